"""The legacy export reader: good rows kept, every bad row reported as file:line: reason."""

import hashlib
import re
import sys
from pathlib import Path

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils import (
    consent_file,
    export_fields,
    legacy_export,
)
from ansible_collections.sipwave.platform.plugins.module_utils.e164 import NumberPlan

PROJECT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT / "tools"))
import make_sample_export  # noqa: E402  # tools/ is not a package

POLAND = NumberPlan(country_code="48", national_lengths=frozenset({9}))
HEADER = ",".join(legacy_export.COLUMNS)
DOMAIN = "ip.tanifon.pl"
PASSWORD = "Secret-Pw-123"
HA1 = hashlib.md5(f"481234001:{DOMAIN}:{PASSWORD}".encode()).hexdigest()
GOOD = (
    f"481234001,{PASSWORD},,{DOMAIN},Anna Nowak,anna@example.test,"
    "+48221234567;0048221234568,600100200,sales,12.50,yealink:T46U:00:15:65:aa:bb:cc,wave1"
)
OTHER = (
    f"481234002,Other-Pw-456,,{DOMAIN},Jan Kowalski,jan@example.test,221234569,,support,0,,wave1"
)


def write(tmp_path: Path, *lines: str | bytes, name: str = "export.csv") -> Path:
    path = tmp_path / name
    raw = [line if isinstance(line, bytes) else line.encode() for line in lines]
    path.write_bytes(b"\n".join(raw) + b"\n")
    return path


def replace(row: str, column: str, value: str) -> str:
    fields = row.split(",")
    fields[legacy_export.COLUMNS.index(column)] = value
    return ",".join(fields)


def read(path: Path) -> legacy_export.Export:
    return legacy_export.read_export(str(path), POLAND)


def test_good_row_is_kept_with_e164_numbers(tmp_path):
    export = read(write(tmp_path, HEADER, GOOD))

    account = export.accounts["481234001"]
    assert account.numbers == ("+48221234567", "+48221234568")
    assert account.dialin_numbers == ("+48600100200",)
    assert account.devices == (export_fields.Device("yealink", "T46U", "001565aabbcc"),)
    assert (account.balance, account.wave, account.line) == ("12.50", "wave1", 2)
    assert export.bad_rows == []


@pytest.mark.parametrize(
    ("column", "value", "reason", "text"),
    [
        ("numbers", "+48 22 12x 45 67", "number", "holds characters other than digits"),
        ("password", "", "credentials", "neither password nor ha1"),
        ("ha1", "abc", "ha1", "ha1 is not 32 hexadecimal digits"),
        ("ha1", "0" * 32, "ha1", "ha1 does not match"),
        ("balance", '"12,50"', "balance", "is not a decimal number"),
        ("balance", "-1", "balance", "must be zero or more"),
        ("balance", "1.005", "balance", "more than 2 decimal places"),
        ("login", "bad login", "login", "login 'bad login' must be"),
        ("login", "", "login", "login is empty"),
        ("domain", "not a domain", "domain", "is not a SIP domain name"),
    ],
)
def test_bad_field_is_reported_with_file_line_and_reason(tmp_path, column, value, reason, text):
    path = write(tmp_path, HEADER, OTHER, replace(GOOD, column, value))

    export = read(path)

    assert [str(p) for p in export.problems] == [f"{path}:3: {p.message}" for p in export.problems]
    assert [(p.line, p.reason) for p in export.problems] == [(3, reason)]
    assert text in export.problems[0].message
    assert list(export.accounts) == ["481234002"]
    assert PASSWORD not in str(export.problems[0])


@pytest.mark.parametrize(
    ("column", "value", "kept", "reason", "text"),
    [
        ("dialin_numbers", "12345;+48600100201", ("+48600100201",), "number",
         "dialin_numbers: '12345' is neither"),
        ("devices", "yealink:T46:00:15:65:zz:00:01;snom:D785:000413aabbcc",
         (export_fields.Device("snom", "D785", "000413aabbcc"),), "mac", "malformed MAC"),
        ("devices", "avaya:9611:001565aabbcc", (), "vendor", "unknown vendor 'avaya'"),
        ("devices", "yealink", (), "device", "is not vendor:model:mac"),
    ],
)  # fmt: skip
def test_a_bad_optional_part_is_dropped_and_the_account_migrates_without_it(
    tmp_path, column, value, kept, reason, text
):
    path = write(tmp_path, HEADER, OTHER, replace(GOOD, column, value))

    export = read(path)

    assert export.bad_rows == [] and export.problems == []
    account = export.accounts["481234001"]
    assert getattr(account, column) == kept
    (dropped,) = account.dropped
    assert (dropped.column, dropped.reason) == (column, reason) and text in dropped.message
    (listed,) = export.dropped_parts()
    assert str(listed).startswith(f"{path}:3: ") and "dropped" in str(listed)
    assert export.summary()["partial"] == 1
    assert export.summary()["dropped_per_reason"] == {reason: 1}
    (action,) = export.care_actions(["481234001", "481234002"])
    assert action["login"] == "481234001" and action["email"] == account.email
    assert [(d["column"], d["reason"]) for d in action["dropped"]] == [(column, reason)]


def test_a_row_rejected_for_another_reason_lists_its_bad_optional_parts_too(tmp_path):
    row = replace(replace(GOOD, "balance", "x"), "dialin_numbers", "12345")
    export = read(write(tmp_path, HEADER, OTHER, row))

    assert [p.reason for p in export.problems] == ["balance", "number"]
    (action,) = export.care_actions(["481234001"])
    assert action["action"].startswith("not migrated") and len(action["why"]) == 2
    assert action["email"] == "anna@example.test"
    assert PASSWORD not in str(action)


@pytest.mark.parametrize("vendor", ["poly", "Polycom", "GRANDSTREAM", "snom", "cisco",
                                    "fanvil", "gigaset", "yealink"])  # fmt: skip
def test_known_vendors_are_accepted(tmp_path, vendor):
    export = read(write(tmp_path, HEADER, replace(GOOD, "devices", f"{vendor}:X1:001565aabbcc")))

    expected = "polycom" if vendor.lower() in ("poly", "polycom") else vendor.lower()
    assert export.accounts["481234001"].devices[0].vendor == expected


def test_duplicate_login_names_both_lines_and_keeps_neither(tmp_path):
    path = write(tmp_path, HEADER, GOOD, OTHER, replace(GOOD, "numbers", "221234570"))

    export = read(path)

    assert [str(p) for p in export.problems] == [
        f"{path}:2: login '481234001' is also on line 4",
        f"{path}:4: login '481234001' is also on line 2",
    ]
    assert list(export.accounts) == ["481234002"]


def test_a_number_of_two_accounts_is_reported_on_the_second(tmp_path):
    path = write(tmp_path, HEADER, GOOD, replace(OTHER, "numbers", "+48 22 123 45 67"))

    export = read(path)

    assert [str(p) for p in export.problems] == [
        f"{path}:3: number +48221234567 already belongs to login '481234001' (line 2)"
    ]


@pytest.mark.parametrize(
    ("row", "found"),
    [(GOOD.rsplit(",", 1)[0], 11), (GOOD + ",extra", 13)],
    ids=["missing", "extra"],
)
def test_missing_or_extra_column_is_reported_without_the_row(tmp_path, row, found):
    path = write(tmp_path, HEADER, row)

    export = read(path)

    assert [str(p) for p in export.problems] == [f"{path}:2: expected 12 fields, found {found}"]


def test_broken_utf8_is_reported_on_its_physical_line_inside_a_quoted_newline(tmp_path):
    quoted = replace(GOOD, "display_name", '"Firma\nSp. z o.o."').encode()
    broken = quoted.replace(b"Sp. z", b"Sp.\xff z")
    path = write(tmp_path, HEADER, OTHER, broken, replace(OTHER, "login", "481234003").replace(
        "221234569", "221234571"))  # fmt: skip

    export = read(path)

    assert [(p.line, p.reason) for p in export.problems] == [(4, "utf8")]
    assert str(export.problems[0]) == f"{path}:4: broken UTF-8 at byte 4"
    assert sorted(export.accounts) == ["481234002", "481234003"]
    assert export.accounts["481234003"].line == 5


def test_quoted_newline_keeps_line_numbers_of_later_rows(tmp_path):
    quoted = replace(GOOD, "display_name", '"Firma\nSp. z o.o."')
    path = write(tmp_path, HEADER, quoted, replace(OTHER, "balance", "x"))

    export = read(path)

    # The line break itself is refused (a control character), where the row starts.
    assert [(p.line, p.reason) for p in export.problems] == [(2, "control"), (4, "balance")]
    assert export.accounts == {}


@pytest.mark.parametrize(
    ("column", "value", "character"),
    [
        ("department", '"sales\nEXEC Dial PJSIP/+4420@sipwave-carrier"', "U+000A"),
        ("display_name", '"Anna\r\nBcc: all@example.test"', "U+000D"),
        ("devices", '"yealink:T46U\nstatic.auto_provision.repeat.minutes = 1:001565aabbcc"',
         "U+000A"),
        ("email", "anna@example.test\x00", "U+0000"),
        ("password", "Secret\tPw", "U+0009"),
        ("display_name", "Anna\u2028Nowak", "U+2028"),
        ("department", "sal\x85es", "U+0085"),
    ],
)  # fmt: skip
def test_control_characters_in_any_field_refuse_the_row(tmp_path, column, value, character):
    path = write(tmp_path, HEADER, OTHER, replace(GOOD, column, value))

    export = read(path)

    assert [str(p) for p in export.problems] == [
        f"{path}:3: {column} holds a control character ({character})"
    ]
    assert [p.reason for p in export.problems] == ["control"]
    assert list(export.accounts) == ["481234002"]


def test_unterminated_quote_is_reported(tmp_path):
    path = write(tmp_path, HEADER, OTHER, replace(GOOD, "display_name", '"Firma'))

    export = read(path)

    assert [(p.line, p.reason) for p in export.problems] == [(3, "columns")]
    assert "never closed" in export.problems[0].message


def test_a_stray_quote_inside_a_field_is_text_and_joins_no_later_row(tmp_path):
    # A quote opens a quoted field only at the start of a field: before, one quote in a
    # display name made every later row part of an "unterminated" record, and those
    # customers vanished from the export without a line of their own in the report.
    third = replace(replace(OTHER, "login", "481234003"), "numbers", "221234571")
    path = write(tmp_path, HEADER, replace(GOOD, "display_name", 'Anna "Ania Nowak'), OTHER, third)

    export = read(path)

    assert export.problems == []
    assert sorted(export.accounts) == ["481234001", "481234002", "481234003"]
    assert export.accounts["481234001"].display_name == 'Anna "Ania Nowak'
    assert (export.rows, export.accounts["481234003"].line) == (3, 4)


@pytest.mark.parametrize(
    ("value", "name"),
    [('"Nowak ""Ania"", sales"', 'Nowak "Ania", sales'), ('"Nowak"', "Nowak"), ('""', "")],
)
def test_quoted_fields_follow_the_export_dialect(tmp_path, value, name):
    export = read(write(tmp_path, HEADER, replace(GOOD, "display_name", value)))

    assert export.accounts["481234001"].display_name == name


def test_a_carriage_return_inside_a_field_refuses_that_row_only(tmp_path):
    # Python's csv module stops the whole file on a lone CR in an unquoted field
    # ("new-line character seen in unquoted field"), with no file or line named.
    path = tmp_path / "export.csv"
    bad = replace(GOOD, "display_name", "Anna\rBcc: all@example.test")
    path.write_bytes(f"{HEADER}\r\n{bad}\r\n{OTHER}\r\n".encode())

    export = read(path)

    assert [str(p) for p in export.problems] == [
        f"{path}:2: display_name holds a control character (U+000D)"
    ]
    assert list(export.accounts) == ["481234002"]


def test_password_keeps_its_spaces_and_other_fields_are_trimmed(tmp_path):
    row = replace(replace(GOOD, "password", " pw with spaces "), "department", "  sales ")

    account = read(write(tmp_path, HEADER, row)).accounts["481234001"]

    assert (account.password, account.department) == (" pw with spaces ", "sales")


def test_ha1_only_row_is_good_and_lowercased(tmp_path):
    row = replace(replace(GOOD, "password", ""), "ha1", HA1.upper())

    account = read(write(tmp_path, HEADER, row)).accounts["481234001"]

    assert (account.password, account.ha1) == ("", HA1)


def test_bom_and_crlf_are_accepted(tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes(b"\xef\xbb\xbf" + f"{HEADER}\r\n{GOOD}\r\n".encode())

    assert list(read(path).accounts) == ["481234001"]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("login,password", "header lacks column(s) ha1, domain"),
        (HEADER + ",color", "header has unknown column(s) color"),
        (HEADER + ",login", "header repeats column(s) login"),
    ],
)
def test_bad_header_stops_the_reading(tmp_path, header, message):
    path = write(tmp_path, header, GOOD)

    with pytest.raises(legacy_export.ExportError, match=re.escape(message)) as raised:
        read(path)

    assert str(raised.value).startswith(f"{path}:1: ")


def test_wave_column_is_optional(tmp_path):
    header = ",".join(legacy_export.COLUMNS[:-1])
    row = GOOD.rsplit(",", 1)[0]

    assert read(write(tmp_path, header, row)).accounts["481234001"].wave == ""


def test_missing_file_is_an_export_error(tmp_path):
    with pytest.raises(legacy_export.ExportError, match="cannot read the export"):
        read(tmp_path / "missing.csv")


def test_summary_counts_good_and_bad_rows_per_reason(tmp_path):
    path = write(
        tmp_path, HEADER, GOOD, OTHER, replace(replace(OTHER, "login", "481234009"),
                                               "balance", "x").replace("221234569", "bad"),
    )  # fmt: skip

    assert read(path).summary() == {
        "file": str(path),
        "rows": 3,
        "good": 2,
        "bad": 1,
        "bad_per_reason": {"balance": 1, "number": 1},
        "partial": 0,
        "dropped_per_reason": {},
    }


def test_account_repr_never_shows_credentials(tmp_path):
    account = read(write(tmp_path, HEADER, GOOD)).accounts["481234001"]

    assert PASSWORD not in repr(account)


def test_sample_export_has_every_kind_of_bad_row_and_500_good_ones():
    path = PROJECT / "inventories/lab/files/legacy_export.csv"

    export = read(path)

    assert len(export.accounts) >= 500 - 2
    assert export.rows >= 500
    assert set(export.summary()["bad_per_reason"]) >= {
        "balance", "columns", "credentials", "duplicate_login", "duplicate_number", "ha1",
        "login", "number", "utf8",
    }  # fmt: skip
    # Rows whose only problem is a dial-in number or a device migrate without it.
    assert set(export.summary()["dropped_per_reason"]) == {"device", "mac", "number", "vendor"}
    assert path.read_bytes() == make_sample_export.build(500, 4, ["wave1", "wave2"], True)


def test_consent_file_is_read_with_line_numbers(tmp_path):
    path = write(tmp_path, "login,decision", "481234001,migrate", "481234002,CLOSE", name="c.csv")

    decisions = consent_file.read_consent(str(path))

    assert [(d.login, d.decision, d.source) for d in decisions] == [
        ("481234001", "migrate", f"{path}:2"),
        ("481234002", "close", f"{path}:3"),
    ]


def test_bad_consent_rows_are_all_reported(tmp_path):
    path = write(
        tmp_path, "login,decision", "481234001,maybe", "481234002,close", "481234002,migrate",
        name="c.csv",
    )  # fmt: skip

    with pytest.raises(legacy_export.ExportError) as raised:
        consent_file.read_consent(str(path))

    assert str(raised.value).splitlines()[1:] == [
        f"{path}:2: decision 'maybe' is not migrate or close",
        f"{path}:4: login '481234002' decided otherwise on line 3",
    ]


def test_a_row_with_broken_utf8_still_names_its_login_and_wave(tmp_path):
    broken = replace(GOOD, "email", "anna@ex\udce9mple.test").encode(errors="surrogateescape")

    export = read(write(tmp_path, HEADER, broken))

    assert [(row.line, row.login, row.wave) for row in export.bad_rows] == [
        (2, "481234001", "wave1")
    ]


@pytest.mark.parametrize(
    ("written", "kept"), [("7", "7.00"), ("012.5", "12.50"), ("0.05", "0.05"), ("", "0.00")]
)
def test_balance_is_kept_with_two_decimals(tmp_path, written, kept):
    export = read(write(tmp_path, HEADER, replace(GOOD, "balance", written)))

    assert export.accounts["481234001"].balance == kept
