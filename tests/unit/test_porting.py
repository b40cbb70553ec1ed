"""Number porting on both sides, on real SQLite files: the migration code's regime, the
secret code's hash, the request state machine with the number inventory following it, the
donor's answers, the exchange files, cutover and the rollback rules that keep numbers and
money right."""

import sqlite3
from pathlib import Path

import pytest
import yaml
from ansible_collections.sipwave.platform.plugins.module_utils.credentials import port_secret
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db import (
    connection as dbconn,
)
from ansible_collections.sipwave.platform.plugins.module_utils.porting import (
    cutover,
    donor,
    exchange,
    recipient,
    regime,
    secret,
    states,
)
from ansible_collections.sipwave.platform.plugins.module_utils.porting.requests import PortError
from ansible_collections.sipwave.platform.plugins.module_utils.wave.model import MigrationError
from ansible_collections.sipwave.platform.plugins.module_utils.wave.outcomes import outcome_rows
from wave_helpers import (
    PROJECT,
    SITE_SECRET,
    account,
    consent,
    create_database,
    dump,
    rollback,
    run,
    settings,
)

IT = regime.load(
    yaml.safe_load((PROJECT / "playbooks/files/porting_regimes/it.yml").read_text()), "it.yml"
)
CHECKED = regime.load({**IT.__dict__, "name": "lab", "fields": [
    {"name": f.name, "length": [f.low, f.high] if f.low != f.high else f.low, "chars": f.chars}
    for f in IT.fields], "check": {"field": "check", "algorithm": "sipwave-mod36"}})  # fmt: skip
ANNA = account("481234201", ("+48221234201", "+48581234201"))
JAN = account("481234202", ("+48221234202",))
CODE = IT.issue("TNF", "221234201", "001")
SECRET = port_secret(SITE_SECRET, CODE)
STEP = {"run_id": "test-run", "actor": "ops.jan", "check_mode": False}


def connect(database: Path):
    return dbconn.connect("sqlite", database=str(database))


def call(database: Path, function, *args, **kwargs):
    conn = connect(database)
    try:
        return function(conn, *args, **kwargs)
    finally:
        conn.close()


@pytest.fixture
def served(tmp_path) -> Path:
    """A proxy database with two accounts served in phase 1 (their numbers legacy)."""
    database = create_database(tmp_path / "proxy.sqlite")
    run(database, [ANNA, JAN])
    return database


def numbers(database: Path, login: str) -> dict[str, str]:
    with sqlite3.connect(database) as connection:
        return dict(connection.execute(
            "SELECT number, state FROM sipwave_number WHERE login = ? AND kind = 'number'", (login,)
        ).fetchall())  # fmt: skip


def submit(database: Path, ref="P1", login=ANNA.login, code=CODE, secret_code=SECRET, **extra):
    entry = {"ref": ref, "login": login, "migration_code": code, "secret_code": secret_code,
             "numbers": extra.get("numbers"),
             "requested_date": extra.get("requested_date", "2026-12-20")}  # fmt: skip
    return call(database, recipient.submit, IT, [entry], **STEP)


# -- the regime ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "field"),
    [
        ("TN! 221234201 001 K", "only letters and digits"),
        ("TNF 2212 001 K", "characters; the it layout has 15 to 19"),
        ("TNF 221234201 0A1 K", "field service is '0A1'"),
        ("TN_221234201001K", "only letters and digits"),
    ],
)
def test_a_malformed_migration_code_is_refused_naming_what_is_wrong(code, field):
    with pytest.raises(regime.CodeError, match=field):
        IT.parse(code)


def test_a_code_is_read_in_parts_whatever_the_spacing_and_case():
    assert IT.parse("tnf-221234201.001 k") == {
        "operator": "TNF", "resource": "221234201", "service": "001", "check": "K"
    }  # fmt: skip


def test_the_check_character_catches_a_mistyped_character():
    code = CHECKED.issue("TNF", "221234201", "001")
    assert CHECKED.parse(code)
    typo = code[:5] + ("9" if code[5] != "9" else "8") + code[6:]
    with pytest.raises(regime.CodeError, match="field check does not match"):
        CHECKED.parse(typo)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fields": []}, "fields must be a non-empty list"),
        (
            {
                "fields": [
                    {"name": "a", "length": [2, 3], "chars": "A-Z"},
                    {"name": "b", "length": [1, 2], "chars": "0-9"},
                ]
            },
            "at most one field may have a variable length",
        ),
        ({"fields": [{"name": "a", "length": 3, "chars": "a-z"}]}, r"fields\[0\]: chars"),
        ({"check": {"field": "nope", "algorithm": "none"}}, "check.field 'nope' is not a field"),
        ({"check": {"field": "check", "algorithm": "luhn"}}, "check.algorithm must be one of"),
    ],
)
def test_a_bad_regime_file_is_refused_naming_the_entry(change, message):
    data = yaml.safe_load((PROJECT / "playbooks/files/porting_regimes/it.yml").read_text())
    with pytest.raises(regime.RegimeError, match=message):
        regime.load({**data, **change}, "it.yml")


# -- the secret code ------------------------------------------------------------------------------


def test_the_secret_code_is_kept_only_as_a_salted_slow_hash_of_its_code():
    hashed = secret.proof(SECRET, CODE)
    assert hashed.startswith("scrypt$") and SECRET not in hashed
    other = IT.issue("TNF", "221234202", "001")
    assert secret.proof(SECRET, other) != hashed  # salted per code
    request = {"recipient": "SWV", "ref": "P1", "attempt": 1, "code": CODE}
    sent = secret.bound_proof(secret.proof(SECRET.lower(), CODE), **request)
    assert secret.proofs_match(sent, hashed, **request)
    wrong = secret.bound_proof(secret.proof("WRONG123", CODE), **request)
    assert not secret.proofs_match(wrong, hashed, **request)


@pytest.mark.parametrize(
    "changed", [{"recipient": "XXX"}, {"ref": "P2"}, {"attempt": 2}]
)  # fmt: skip
def test_a_proof_copied_out_of_one_request_fits_no_other(changed):
    """Another operator that reads a request file cannot reuse its proof."""
    request = {"recipient": "SWV", "ref": "P1", "attempt": 1, "code": CODE}
    sent = secret.bound_proof(secret.proof(SECRET, CODE), **request)
    assert not secret.proofs_match(sent, secret.proof(SECRET, CODE), **{**request, **changed})


# -- the recipient's requests -----------------------------------------------------------------


def test_phase1_validates_the_request_and_the_numbers_go_porting(served):
    result = submit(served)
    assert [(e["from"], e["to"]) for e in result["events"]] == [
        (None, "requested"), ("requested", "validated")
    ]  # fmt: skip
    assert numbers(served, ANNA.login) == {n: "porting" for n in ANNA.numbers}
    assert "secret_proof" not in result["requests"][0]
    with sqlite3.connect(served) as connection:
        stored = connection.execute("SELECT secret_proof FROM sipwave_port_request").fetchone()[0]
        assert SECRET not in stored and stored.startswith("scrypt$")
        actors = connection.execute("SELECT DISTINCT actor FROM sipwave_port_event").fetchall()
        assert actors == [("ops.jan",)]


def test_the_same_request_again_changes_nothing(served):
    submit(served)
    assert submit(served)["events"] == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"login": "481299999"}, "account 481299999: not migrated"),
        ({"numbers": ["+48229999999"]}, r"numbers: \+48229999999 is not a number of account"),
        ({"code": "TNF 221234201 0A1 K"}, "field service"),
        ({"secret_code": "x"}, "secret code: 4 to 32 letters or digits"),
        ({"requested_date": "2026-13-01"}, "requested_date"),
    ],
)
def test_a_bad_request_is_refused_and_nothing_is_stored(served, extra, message):
    with pytest.raises(ValueError, match=message):
        submit(served, **extra)
    assert numbers(served, ANNA.login) == {n: "legacy" for n in ANNA.numbers}
    with sqlite3.connect(served) as connection:
        assert connection.execute("SELECT count(*) FROM sipwave_port_request").fetchone() == (0,)


def test_a_number_already_porting_cannot_be_requested_twice(served):
    submit(served)
    with pytest.raises(PortError, match="is porting, not at the old operator"):
        submit(served, ref="P2", numbers=[ANNA.numbers[0]])
    with pytest.raises(PortError, match="no number at the old operator to port"):
        submit(served, ref="P3")


def donor_database(tmp_path: Path, wrong_limit_hits: int = 0) -> Path:
    """The losing operator's platform (the lab's legacy one: no wave engine tables)."""
    database = create_database(tmp_path / "legacy.sqlite")
    call(database, donor.issue, IT, operator="TNF", service="001", country_code="48",
         site_secret=SITE_SECRET, accounts=[{"login": ANNA.login, "numbers": list(ANNA.numbers)}],
         check_mode=False)  # fmt: skip
    return database


def exchange_round(proxy: Path, legacy: Path) -> list[dict]:
    """Requests out, answers back, answers applied: the events of applying them."""
    records = call(proxy, recipient.outgoing, "SWV")
    text = exchange.render_requests(records)
    call(proxy, recipient.mark_notified, [r["ref"] for r in records], **STEP)
    parsed = exchange.parse_requests("SWV-TNF-1.requests.csv", text)
    answered = call(legacy, donor.answer, parsed, operator="TNF", check_mode=False)
    answers = exchange.parse_answers(
        "TNF-SWV-1.answers.csv", exchange.render_answers(answered["answers"])
    )
    return call(proxy, recipient.apply_answers, answers, "SWV", **STEP)["events"]


def test_the_full_path_ends_ported_with_the_numbers_active_and_the_temporary_one_returned(
    served, tmp_path
):
    with sqlite3.connect(served) as connection:
        connection.execute(
            "INSERT INTO sipwave_number (number, login, kind, state) VALUES "
            "('+48225559000', ?, 'temporary', 'temporary')",
            (ANNA.login,),
        )
    legacy = donor_database(tmp_path)
    submit(served)
    events = exchange_round(served, legacy)
    assert [e["to"] for e in events] == ["donor_accepted"]
    assert [e["to"] for e in call(served, recipient.schedule, None, None, **STEP)["events"]] == [
        "scheduled"
    ]
    done = call(served, recipient.complete, None, "ported", "", on="2026-12-20", **STEP)
    assert [e["to"] for e in done["events"]] == ["ported"]
    assert done["returned_temporary"] == ["+48225559000"]
    assert numbers(served, ANNA.login) == {n: "active" for n in ANNA.numbers}
    with sqlite3.connect(served) as connection:
        assert connection.execute("SELECT number FROM sipwave_number_quarantine").fetchall() == [
            ("+48225559000",)
        ]
    # a later wave run keeps the numbers active and gives no new temporary number
    run(served, [ANNA, JAN])
    assert numbers(served, ANNA.login) == {n: "active" for n in ANNA.numbers}


def test_a_scheduled_port_waits_for_its_date(served, tmp_path):
    legacy = donor_database(tmp_path)
    submit(served, requested_date="2026-12-20")
    exchange_round(served, legacy)
    call(served, recipient.schedule, None, None, **STEP)
    early = call(served, recipient.complete, None, "ported", "", on="2026-12-19", **STEP)
    assert early["events"] == []


def test_wrong_secret_codes_are_refused_and_the_fourth_blocks_the_request(served, tmp_path):
    legacy = donor_database(tmp_path)
    submit(served, secret_code="WRONG1")
    for attempt in range(1, 4):
        assert [(e["to"], e["reason"]) for e in exchange_round(served, legacy)] == [
            ("donor_rejected", "secret_code")
        ]
        assert numbers(served, ANNA.login) == {n: "porting" for n in ANNA.numbers}
        call(served, recipient.resubmit, ref="P1", secret_code=f"WRONG{attempt + 1}", **STEP)
    events = exchange_round(served, legacy)
    assert [(e["to"], e["reason"]) for e in events] == [
        ("donor_rejected", "secret_code"), ("failed", states.BLOCKED_REASON)
    ]  # fmt: skip
    assert numbers(served, ANNA.login) == {n: "legacy" for n in ANNA.numbers}
    with pytest.raises(ValueError, match="failed cannot become validated"):
        call(served, recipient.resubmit, ref="P1", secret_code=SECRET, **STEP)
    # the donor blocked the code too: even the right secret code is refused now
    submit(served, ref="P2")
    assert [(e["to"], e["reason"]) for e in exchange_round(served, legacy)] == [
        ("donor_rejected", "blocked")
    ]


def test_a_donor_rejection_ends_the_request_and_frees_the_numbers(served, tmp_path):
    legacy = donor_database(tmp_path)
    submit(served, ref="P9", login=JAN.login, code=IT.issue("TNF", "221234202", "001"),
           secret_code="ANYTHING1")  # fmt: skip
    assert [(e["to"], e["reason"]) for e in exchange_round(served, legacy)] == [
        ("donor_rejected", "unknown_code")
    ]
    assert numbers(served, JAN.login) == {n: "legacy" for n in JAN.numbers}
    with pytest.raises(ValueError, match=r"rejected by the donor \(unknown_code\), it has ended"):
        call(served, recipient.resubmit, ref="P9", secret_code=SECRET, **STEP)


def test_a_cancelled_request_frees_the_numbers(served):
    submit(served)
    events = call(served, recipient.cancel, ["P1"], "customer changed mind", **STEP)["events"]
    assert [(e["to"], e["reason"]) for e in events] == [("cancelled", "customer changed mind")]
    assert numbers(served, ANNA.login) == {n: "legacy" for n in ANNA.numbers}
    assert call(served, recipient.cancel, ["P1"], "again", **STEP)["events"] == []


def test_an_answer_applied_twice_counts_once(served, tmp_path):
    legacy = donor_database(tmp_path)
    submit(served, secret_code="WRONG1")
    records = call(served, recipient.outgoing, "SWV")
    call(served, recipient.mark_notified, ["P1"], **STEP)
    answered = call(legacy, donor.answer, exchange.parse_requests("r", exchange.render_requests(
        records)), operator="TNF", check_mode=False)  # fmt: skip
    again = call(legacy, donor.answer, exchange.parse_requests("r", exchange.render_requests(
        records)), operator="TNF", check_mode=False)  # fmt: skip
    assert again["answers"] == answered["answers"] and again["new_answers"] == 0
    answers = exchange.parse_answers("a", exchange.render_answers(answered["answers"]))
    call(served, recipient.apply_answers, answers, "SWV", **STEP)
    second = call(served, recipient.apply_answers, answers, "SWV", **STEP)
    assert second["events"] == [] and second["skipped"] == ["P1"]
    with sqlite3.connect(served) as connection:
        assert connection.execute("SELECT wrong_secrets FROM sipwave_port_request").fetchone() == (
            1,
        )


# -- the donor side --------------------------------------------------------------------------------


def closed_database(tmp_path: Path) -> Path:
    database = create_database(tmp_path / "proxy.sqlite")
    run(database, [ANNA, JAN])
    consent(database, **{ANNA.login: "close"})
    run(database, [ANNA, JAN], phase=2)
    return database


def issue(database: Path):
    return call(database, donor.issue, IT, operator="SWV", service="001", country_code="48",
                site_secret=SITE_SECRET, accounts=None, check_mode=False)  # fmt: skip


def test_a_closed_account_with_numbers_kept_for_porting_gets_one_code(tmp_path):
    database = closed_database(tmp_path)
    first = issue(database)
    assert [(c["login"], c["migration_code"][:12]) for c in first["issued"]] == [
        (ANNA.login, "SWV221234201")
    ]
    assert issue(database)["issued"] == [] and issue(database)["codes"] == first["issued"]
    with sqlite3.connect(database) as connection:
        stored = connection.execute("SELECT secret_proof FROM sipwave_port_code").fetchone()[0]
    code = first["issued"][0]["migration_code"]
    assert port_secret(SITE_SECRET, code) not in stored


def request_for(code: str, secret_code: str, numbers=ANNA.numbers, ref="X1") -> list[dict]:
    text = exchange.render_requests([{
        "record": "request", "ref": ref, "attempt": 1, "recipient": "OTH", "donor": "SWV",
        "migration_code": code,
        "secret_proof": secret.bound_proof(secret.proof(secret_code, code), recipient="OTH",
                                           ref=ref, attempt=1, code=code),
        "numbers": list(numbers), "requested_date": "2026-12-24"}])  # fmt: skip
    return exchange.parse_requests("OTH-SWV-1.requests.csv", text)


def test_as_donor_a_request_with_the_codes_is_accepted_and_wrong_codes_rejected(tmp_path):
    database = closed_database(tmp_path)
    code = issue(database)["issued"][0]["migration_code"]
    right = port_secret(SITE_SECRET, code)
    answers = [
        call(database, donor.answer, request_for(code, "WRONG123", ref="X1"), operator="SWV",
             check_mode=False)["answers"][0],
        call(database, donor.answer, request_for(code, right, ("+48229999999",), ref="X2"),
             operator="SWV", check_mode=False)["answers"][0],
        call(database, donor.answer, request_for(code, right, ref="X3"), operator="SWV",
             check_mode=False)["answers"][0],
        call(database, donor.answer, request_for(code, right, ref="X4"), operator="SWV",
             check_mode=False)["answers"][0],
    ]  # fmt: skip
    assert [(a["answer"], a["reason"]) for a in answers] == [
        ("rejected", "secret_code"), ("rejected", "numbers"), ("accepted", ""),
        ("rejected", "already_ported"),
    ]  # fmt: skip


def test_a_request_for_another_operator_is_refused(tmp_path):
    database = closed_database(tmp_path)
    with pytest.raises(PortError, match="request for operator SWV, not XYZ"):
        call(database, donor.answer, request_for(CODE, SECRET), operator="XYZ", check_mode=False)


def test_a_code_is_withdrawn_when_a_rollback_reopens_the_account(tmp_path):
    database = closed_database(tmp_path)
    code = issue(database)["issued"][0]["migration_code"]
    rollback(database)
    assert issue(database)["withdrawn"] == [{"login": ANNA.login, "migration_code": code}]
    answer = call(database, donor.answer, request_for(code, port_secret(SITE_SECRET, code)),
                  operator="SWV", check_mode=False)["answers"][0]  # fmt: skip
    assert (answer["answer"], answer["reason"]) == ("rejected", "not_closed")


# -- exchange files --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty, not even a header row"),
        ("record,ref\n", "the header must name"),
        ("record,ref,attempt,recipient,donor,migration_code,answer,reason,date\n"
         "answer,R1,1,SWV,TNF,CODE1,maybe,,2026-12-01\n", "f.csv:2: answer must be accepted"),
        ("record,ref,attempt,recipient,donor,migration_code,answer,reason,date\n"
         "answer,R1,1,SWV,TNF,CODE1,rejected,because I say so,2026-12-01\n", "f.csv:2: reason"),
        ("record,ref,attempt,recipient,donor,migration_code,answer,reason,date\n"
         "answer,R1,1,SWV,TNF,CODE1,accepted,,2026-12-01\n"
         "answer,R1,1,SWV,TNF,CODE1,accepted,,2026-12-01\n", "f.csv:3: answer R1 appears twice"),
        ("record,ref,attempt,recipient,donor,migration_code,answer,reason,date\n"
         "answer,R1,1,SWV,TNF,CODE1,accepted,,2026-12-01\x00\n", "control character"),
    ],
)  # fmt: skip
def test_a_bad_answer_file_is_refused_naming_file_line_and_field(text, message):
    with pytest.raises(exchange.ExchangeError, match=message):
        exchange.parse_answers("f.csv", text)


# -- cutover and rollback ---------------------------------------------------------------------


def test_cutover_names_every_blocker_and_rollback_refuses_an_account_past_it(served, tmp_path):
    found = call(served, cutover.blockers, [ANNA.login], backup_at=None, backup_max_age_hours=24)
    assert found["general"] == ["no backup of this proxy's database: run playbooks/backup.yml"]
    assert "+48221234201 is legacy, not ported" in found["accounts"][ANNA.login]
    assert found["unregistered"][ANNA.login].startswith(
        "no phone registered as 481234201@ip.tanifon.pl since"
    )
    call(served, cutover.record, [ANNA.login], run_id="cut", actor="ops.jan", wave="wave1",
         check_mode=False)  # fmt: skip
    with pytest.raises(MigrationError, match=r"past their cutover.*481234201"):
        rollback(served)
    conn = connect(served)
    try:
        from ansible_collections.sipwave.platform.plugins.module_utils.wave.rollback import (
            rollback_wave,
        )

        result = rollback_wave(conn, settings(force_after_cutover="customer dispute 42"), False)
    finally:
        conn.close()
    reasons = {p.login: p.reason for p in result.plans}
    assert reasons[ANNA.login] == "forced after cutover: customer dispute 42"


def test_a_rollback_keeps_ported_numbers_and_reverses_a_refund_once(tmp_path):
    database = closed_database(tmp_path)
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE sipwave_number SET state = 'active' WHERE number = ?",
                           (JAN.numbers[0],))  # fmt: skip
    result = rollback(database)
    rows = {row[0]: (row[1], row[9], row[-1]) for row in outcome_rows(result)}
    assert rows[ANNA.login] == ("rollback", None, ANNA.balance)
    assert rows[JAN.login] == (
        "kept",
        f"not rolled back, numbers porting or ported here: {JAN.numbers[0]}",
        None,
    )
    assert numbers(database, JAN.login) == {JAN.numbers[0]: "active"}
    assert numbers(database, ANNA.login) == {}  # not migrated before the wave
    # closing again records one refund, in the closing run only
    run(database, [ANNA, JAN])
    closing = run(database, [ANNA, JAN], phase=2, run_id="close-again")
    refunds = [(p.login, p.refund, p.refund_run) for p in closing.plans if p.refund]
    assert refunds == [(ANNA.login, ANNA.balance, "close-again")]
    assert dump(database)["sipwave_account"][0][1] == "closed"


def test_a_registration_stored_as_kamailio_stores_it_counts_for_cutover(served):
    """db_sqlite keeps TIMESTAMP columns as Julian day numbers; PostgreSQL as timestamps."""
    import time

    julian_now = time.time() / 86400 + cutover.JULIAN_DAY_OF_EPOCH
    with sqlite3.connect(served) as connection:
        connection.execute(
            "INSERT INTO location (ruid, username, domain, contact, last_modified) "
            "VALUES ('r1', ?, 'ip.tanifon.pl', 'sip:a@127.0.0.1', ?)",
            (ANNA.login, julian_now),
        )
        connection.execute(
            "INSERT INTO location (ruid, username, domain, contact, last_modified) "
            "VALUES ('r2', ?, 'ip.tanifon.pl', 'sip:b@127.0.0.1', '2000-01-01 00:00:01')",
            (JAN.login,),
        )
    found = call(served, cutover.blockers, [ANNA.login, JAN.login], backup_at=None,
                 backup_max_age_hours=24)  # fmt: skip
    assert list(found["unregistered"]) == [JAN.login]


def test_a_customer_request_file_is_read_row_by_row(served):
    text = (
        "ref,login,migration_code,secret_code,numbers,requested_date\n"
        f"F1,{ANNA.login},{CODE},{SECRET},,2026-12-20\n"
        f"F2,{JAN.login},TNF 221234202 001 K,ABCD1234,+48221234202,2026-12-21\n"
    )
    rows = exchange.parse_customer_requests("batch.csv", text)
    assert [r["numbers"] for r in rows] == [[], ["+48221234202"]]
    done = call(served, recipient.submit, IT, rows, **STEP)
    assert [r["ref"] for r in done["requests"]] == ["F1", "F2"]
    with pytest.raises(exchange.ExchangeError, match=r"batch\.csv:1: the header must name"):
        exchange.parse_customer_requests("batch.csv", "ref,login\nF1,x\n")


def test_a_record_copying_another_requests_reference_does_not_take_its_answer(tmp_path):
    """A forged record with the genuine request's reference and attempt but a wrong secret
    is answered on its own; the genuine request still gets its own answer."""
    database = closed_database(tmp_path)
    code = issue(database)["issued"][0]["migration_code"]
    forged = request_for(code, "WRONG999", ref="X1")
    genuine = request_for(code, port_secret(SITE_SECRET, code), ref="X1")
    answers = call(database, donor.answer, forged + genuine, operator="SWV", check_mode=False)
    assert [(a["answer"], a["reason"]) for a in answers["answers"]] == [("accepted", "")]
    assert answers["new_answers"] == 2


def test_a_file_whose_records_name_other_operators_than_its_name_is_refused():
    records = request_for(CODE, SECRET)
    exchange.check_sender("OTH-SWV-1.requests.csv", records, "recipient", "donor")
    with pytest.raises(exchange.ExchangeError, match="not what the file's name says"):
        exchange.check_sender("AAA-SWV-1.requests.csv", records, "recipient", "donor")
