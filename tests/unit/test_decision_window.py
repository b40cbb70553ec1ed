"""A wave's decision window (issue 15 item 3): after its decide_by day a phase-2 run applies
the undecided policy to the accounts without a decision (stay on the legacy identity, or
close with refund), on a real SQLite proxy database; a move of one account at once is
refused outside the window."""

from datetime import date, timedelta

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils.wave.arguments import (
    WAVE_ARGUMENTS,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.model import (
    MigrationError,
    settings_from_params,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.window import (
    check_move_now,
    decision_window,
)
from wave_helpers import LEGACY, TODAY, account, consent, create_database, dump, run

DECIDE_BY = TODAY + timedelta(days=14)
AFTER = DECIDE_BY + timedelta(days=1)


@pytest.fixture
def database(tmp_path):
    return create_database(tmp_path / "kamailio.sqlite")


def params(**values) -> dict:
    found = {name: spec.get("default") for name, spec in WAVE_ARGUMENTS.items()}
    found.update(new_domain="sip.sipwave.test", phase=2)
    return found | values


@pytest.mark.parametrize(
    ("today", "policy", "in_force"),
    [(DECIDE_BY, "close", None), (AFTER, "close", "close"), (AFTER, "stay", "stay")],
    ids=["last-day-of-the-window", "after-it-close", "after-it-stay"],
)
def test_the_policy_is_in_force_only_after_the_last_day(today, policy, in_force):
    found = settings_from_params(
        params(decide_by=DECIDE_BY.isoformat(), undecided_policy=policy), "wave1", today, "r"
    )

    assert (found.decide_by, found.undecided) == (DECIDE_BY, in_force)


def test_without_decide_by_the_window_never_ends():
    found = settings_from_params(params(undecided_policy="close"), "wave1", date(2099, 1, 1), "r")

    assert found.undecided is None


def test_a_bad_decide_by_names_the_wave():
    with pytest.raises(MigrationError, match=r"wave wave1: decide_by '14\.12\.2026' is not a date"):
        settings_from_params(params(decide_by="14.12.2026"), "wave1", TODAY, "r")


def test_after_the_window_undecided_accounts_follow_the_policy_and_decided_ones_their_choice(
    database,
):
    stays, closes, migrates = (
        account("481234001", ("+48221234501",)),
        account("481234002", ("+48221234502",), balance="12.50"),
        account("481234003", ("+48221234503",)),
    )
    run(database, [stays, closes, migrates])
    consent(database, **{"481234003": "migrate"})
    window = {"decide_by": DECIDE_BY}

    during = run(database, [stays, closes, migrates], phase=2, **window)
    after_stay = run(database, [stays], phase=2, today=AFTER, undecided="stay", **window)
    after_close = run(database, [closes], phase=2, today=AFTER, undecided="close", **window)

    assert [p.action for p in during.plans] == ["consent_pending", "consent_pending", "phase2"]
    (stayed,) = after_stay.plans
    assert (stayed.action, stayed.reason) == ("phase1", f"no decision by {DECIDE_BY}: policy stay")
    (closed,) = after_close.plans
    assert (closed.action, closed.refund) == ("closed", "12.50")
    assert closed.reason == f"no decision by {DECIDE_BY}: policy close"
    identities = {(user, domain) for user, domain, *_ in dump(database)["subscriber"]}
    assert ("481234001", LEGACY) in identities  # stays and still registers
    assert ("481234002", LEGACY) not in identities  # closed
    assert after_stay.reconciliation["ok"] and after_close.reconciliation["ok"]
    # Each run again changes nothing: the policy is applied once.
    assert not run(database, [stays], phase=2, today=AFTER, undecided="stay", **window).changed
    assert not run(database, [closes], phase=2, today=AFTER, undecided="close", **window).changed


def test_a_late_decision_still_counts_for_an_account_that_stayed(database):
    alice = account("481234001", ("+48221234501",))
    run(database, [alice])
    run(database, [alice], phase=2, today=AFTER, undecided="stay", decide_by=DECIDE_BY)
    consent(database, **{"481234001": "migrate"})

    result = run(database, [alice], phase=2, today=AFTER, undecided="stay", decide_by=DECIDE_BY)

    assert result.plans[0].action == "phase2"


WAVE = {"name": "wave1", "date": TODAY.isoformat(), "decide_by": DECIDE_BY.isoformat()}


@pytest.mark.parametrize("today", [TODAY, DECIDE_BY])
def test_one_account_moves_at_once_inside_the_window(today):
    check_move_now(WAVE, today)


@pytest.mark.parametrize(
    ("today", "message"),
    [
        (TODAY - timedelta(days=1), "wave wave1 starts on 2026-11-22"),
        (AFTER, "the decision window of wave wave1 ended on 2026-12-06"),
    ],
)
def test_one_account_is_not_moved_at_once_outside_the_window(today, message):
    with pytest.raises(MigrationError, match=message):
        check_move_now(WAVE, today)


@pytest.mark.parametrize(
    ("wave", "message"),
    [
        ({**WAVE, "decide_by": "2026-11-01"}, "decide_by 2026-11-01 is before the wave's date"),
        ({**WAVE, "decide_by": "soon"}, "decide_by 'soon' is not a date"),
        ({**WAVE, "undecided": "delete"}, "undecided 'delete' must be one of stay, close"),
    ],
)
def test_a_bad_window_setting_names_the_wave_and_the_setting(wave, message):
    with pytest.raises(MigrationError, match=f"wave wave1: {message}"):
        decision_window(wave)
