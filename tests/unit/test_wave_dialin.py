"""A wave's live accounts as dial-in rows (module_utils.wave_dialin) and the report section."""

import json
from pathlib import Path

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils import legacy_export
from ansible_collections.sipwave.platform.plugins.module_utils.e164 import NumberPlan
from ansible_collections.sipwave.platform.plugins.module_utils.wave_dialin import (
    DEFAULT_DEPARTMENT,
    report_section,
    wave_dialin,
    with_dialin,
)

POLAND = NumberPlan(country_code="48", national_lengths=frozenset({9}))
HEADER = ",".join(legacy_export.COLUMNS)
PASSWORD = "Secret-Pw-77"
ROWS = {
    # login: (numbers, dialin_numbers, department)
    "481200000": ("+48220000000;+48220000010", "+48600000000;0048700000000", "sales"),
    "481200001": ("220000001", "600000001", ""),
    "481200002": ("220000002", "", "support"),
    "481200003": ("", "600000003", "legal"),
    "481200004": ("220000004", "600000004", "finance"),
}


@pytest.fixture
def export(tmp_path: Path) -> legacy_export.Export:
    lines = [HEADER]
    for login, (numbers, dialin, department) in ROWS.items():
        lines.append(
            f"{login},{PASSWORD},,ip.tanifon.pl,Name {login},{login}@example.test,"
            f"{numbers},{dialin},{department},1.00,,wave1"
        )
    path = tmp_path / "export.csv"
    path.write_text("\n".join(lines) + "\n")
    return legacy_export.read_export(str(path), POLAND)


def outcomes(**states: str | None) -> list[dict]:
    return [{"login": login, "action": "phase1", "state": state} for login, state in states.items()]


def test_a_live_account_becomes_one_row_with_its_first_number(export):
    mapping = wave_dialin("wave1", "apply", outcomes(**{"481200000": "phase1"}), export)
    assert mapping.source == "wave:wave1"
    assert mapping.accounts == [
        {
            "id": "481200000",
            "department": "sales",
            "number": "+48220000000",
            "dialin_numbers": ["+48600000000", "+48700000000"],
            "max_calls": 1,
        }
    ]
    assert (mapping.expected_accounts, mapping.expected_numbers) == (1, 2)


@pytest.mark.parametrize("state", ["phase1", "consent_pending", "phase2"])
def test_every_live_state_keeps_dial_in(export, state):
    mapping = wave_dialin("wave1", "apply", outcomes(**{"481200004": state}), export)
    assert [a["id"] for a in mapping.accounts] == ["481200004"]


@pytest.mark.parametrize("state", ["closed", "rejected", "pending", None])
def test_an_account_that_is_not_live_has_no_dial_in(export, state):
    mapping = wave_dialin("wave1", "apply", outcomes(**{"481200004": state}), export)
    assert mapping.accounts == [] and mapping.expected_numbers == 0


def test_an_empty_department_gets_the_default(export):
    mapping = wave_dialin("wave1", "apply", outcomes(**{"481200001": "phase2"}), export)
    assert mapping.accounts[0]["department"] == DEFAULT_DEPARTMENT
    other = wave_dialin(
        "wave1", "apply", outcomes(**{"481200001": "phase2"}), export, default_department="migr"
    )
    assert other.accounts[0]["department"] == "migr"


def test_an_account_without_dial_in_numbers_is_not_handed_over(export):
    mapping = wave_dialin("wave1", "apply", outcomes(**{"481200002": "phase1"}), export)
    assert mapping.accounts == [] and mapping.problems == []


def test_dial_in_numbers_without_an_own_number_are_a_problem_not_dropped(export):
    mapping = wave_dialin("wave1", "apply", outcomes(**{"481200003": "phase1"}), export)
    assert mapping.accounts == [] and mapping.expected_numbers == 1
    assert mapping.problems == [
        "481200003 (line 5): has dial-in numbers but no number of its own to present on calls out"
    ]


def test_a_caller_number_of_two_accounts_goes_to_neither(tmp_path):
    path = tmp_path / "shared.csv"
    rows = [
        f"4812000{i},{PASSWORD},,ip.tanifon.pl,N,n@example.test,22000000{i},600000009;60000000{i},"
        "sales,0,,wave1"
        for i in (1, 2)
    ]
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    export = legacy_export.read_export(str(path), POLAND)
    mapping = wave_dialin(
        "wave1", "apply", outcomes(**dict.fromkeys(export.accounts, "phase1")), export
    )
    assert [a["dialin_numbers"] for a in mapping.accounts] == [["+48600000001"], ["+48600000002"]]
    assert mapping.expected_numbers == 4
    assert mapping.problems == [
        "dial-in number +48600000009 is authorised for several accounts: 48120001 (line 2), "
        "48120002 (line 3)"
    ]


def test_a_kept_account_keeps_its_rows(export):
    kept = [{"login": "481200009", "action": "kept", "state": None, "reason": "bad row"}]
    mapping = wave_dialin("wave1", "apply", kept, export)
    assert mapping.keep == ["481200009"] and mapping.accounts == []


def test_after_a_rollback_the_wave_holds_nothing(export):
    mapping = wave_dialin("wave1", "rollback", outcomes(**{"481200000": "phase1"}), None)
    assert mapping.accounts == [] and mapping.keep == [] and mapping.expected_numbers == 0


def test_no_pin_and_no_secret_in_the_rows(export):
    everyone = outcomes(**dict.fromkeys(ROWS, "phase1"))
    text = json.dumps(wave_dialin("wave1", "apply", everyone, export).as_dict())
    assert PASSWORD not in text and "pin" not in text


def test_the_wave_name_must_make_a_valid_source(export):
    with pytest.raises(Exception, match="source 'wave:a b'"):
        wave_dialin("a b", "apply", [], export)


# -- the report section -------------------------------------------------------------------


def plan_of(export, **states) -> dict:
    return wave_dialin("wave1", "apply", outcomes(**states), export).as_dict()


def host_result(accounts: int, numbers: int, conflicts=(), held=None) -> dict:
    present = {"accounts": accounts, "numbers": numbers}
    return {
        "changed": True,
        "present": present,
        "source_rows": held or present,
        "conflicts": list(conflicts),
    }


def test_every_number_present_on_every_pbx_is_ok(export):
    plan = plan_of(export, **{"481200000": "phase1", "481200004": "phase2"})
    section = report_section(plan, {"pbx1": host_result(2, 3), "pbx2": host_result(2, 3)})
    assert section["ok"] and section["expected"] == {"accounts": 2, "numbers": 3}
    assert section["handed_to_pbx"] == {"accounts": 2, "numbers": 3}
    assert section["hosts"]["pbx2"]["present"] == {"accounts": 2, "numbers": 3}


def test_a_missing_number_on_one_pbx_is_not_ok(export):
    plan = plan_of(export, **{"481200000": "phase1"})
    section = report_section(plan, {"pbx1": host_result(1, 2), "pbx2": host_result(1, 1)})
    assert not section["ok"] and section["hosts"]["pbx1"]["ok"]
    assert section["problems"] == ["pbx2: 1 of 2 dial-in numbers present, 0 conflict(s), 1 held "
                                   "by wave:wave1"]  # fmt: skip


def test_a_conflict_is_not_ok(export):
    plan = plan_of(export, **{"481200004": "phase1"})
    clash = {"account": "481200004", "number": "+48600000004", "held_by": "acme",
             "held_by_source": "inventory"}  # fmt: skip
    section = report_section(plan, {"pbx1": host_result(1, 0, [clash])})
    assert not section["ok"] and section["hosts"]["pbx1"]["conflicts"] == [clash]


def test_an_unmappable_account_is_not_ok(export):
    plan = plan_of(export, **{"481200003": "phase1"})
    section = report_section(plan, {"pbx1": host_result(0, 0)})
    assert not section["ok"] and "481200003" in section["problems"][0]


def test_rows_left_over_after_a_rollback_are_not_ok():
    plan = wave_dialin("wave1", "rollback", [], None).as_dict()
    assert report_section(plan, {"pbx1": host_result(0, 0)})["ok"]
    left_over = host_result(0, 0, held={"accounts": 1, "numbers": 2})
    assert not report_section(plan, {"pbx1": left_over})["ok"]


def test_no_pbx_host_is_not_ok(export):
    assert not report_section(plan_of(export, **{"481200000": "phase1"}), {})["ok"]


def test_the_reconciliation_takes_the_dial_in_check_and_can_be_recorded_again(export):
    report = {"reconciliation": {"ok": True, "problems": []}, "wave": "wave1"}
    plan = plan_of(export, **{"481200000": "phase1"})
    failed = with_dialin(report, report_section(plan, {"pbx1": host_result(1, 1)}))
    assert failed["reconciliation"] == {
        "ok": False,
        "database_ok": True,
        "dialin_ok": False,
        "problems": [],
    }
    fixed = with_dialin(failed, report_section(plan, {"pbx1": host_result(1, 2)}))
    assert fixed["reconciliation"]["ok"] and fixed["dialin"]["ok"]
    database_failed = {"reconciliation": {"ok": False}}
    assert not with_dialin(database_failed, fixed["dialin"])["reconciliation"]["ok"]


def test_every_account_without_a_pin_on_any_pbx_is_listed_and_counted_per_host(export):
    plan = plan_of(export, **{"481200000": "phase1", "481200004": "phase2"})
    first = {**host_result(2, 3), "without_pin": ["481200000", "481200004", "beta"]}
    second = {**host_result(2, 3), "without_pin": ["481200000", "481200004"]}
    section = report_section(plan, {"pbx1": first, "pbx2": second})
    assert section["accounts_without_pin"] == {
        "count": 3,
        "accounts": ["481200000", "481200004", "beta"],
    }
    assert section["hosts"]["pbx1"]["without_pin"] == 3
    assert section["ok"]  # an exposure to see, not a failed hand-over


def test_an_operators_limits_for_a_login_reach_its_row_only(export):
    limits = {"481200000": {"allowed_prefixes": ["+44"], "daily_minutes": 120},
              "481200004": {"daily_minutes": 5}, "999": {"daily_minutes": 1}}  # fmt: skip
    mapping = wave_dialin(
        "wave1", "apply", outcomes(**{"481200000": "phase1", "481200004": "phase2"}), export,
        limits=limits,
    )  # fmt: skip
    rows = {row["id"]: row for row in mapping.accounts}
    assert rows["481200000"]["allowed_prefixes"] == ["+44"]
    assert rows["481200000"]["daily_minutes"] == 120
    assert rows["481200004"]["daily_minutes"] == 5 and "allowed_prefixes" not in rows["481200004"]


def test_an_account_holding_a_temporary_number_carries_it_for_screening_carriers(export):
    held = [
        {"login": "481200000", "action": "unchanged", "state": "phase1",
         "temporary_held": "+48225550900"},
        {"login": "481200001", "action": "phase1", "state": "phase1"},
    ]  # fmt: skip
    rows = {row["id"]: row for row in wave_dialin("wave1", "apply", held, export).accounts}
    assert rows["481200000"]["number"] == "+48220000000"
    assert rows["481200000"]["screened_number"] == "+48225550900"
    assert "screened_number" not in rows["481200001"]
