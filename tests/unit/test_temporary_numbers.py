"""Temporary numbers: while an account's own numbers are still at the old operator, the wave
gives it one number of its area's pool, never to two accounts, and takes it back (into
quarantine) when the account closes or its numbers are served here. Real SQLite files."""

import sqlite3
from datetime import timedelta

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils.wave.model import (
    MigrationError,
    TemporaryPool,
    temporary_pools,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.outcomes import (
    OUTCOME_COLUMNS,
    outcome_rows,
)
from wave_helpers import (
    LEGACY,
    NEW,
    TODAY,
    account,
    consent,
    create_database,
    dump,
    rollback,
    routing_view,
    run,
)

WARSAW = TemporaryPool("+4822", "+48225550900", "+48225550902")
GDANSK = TemporaryPool("+4858", "+48585550900", "+48585550900")
POOLS = {"temporary_pools": (WARSAW, GDANSK)}
ALICE = account("481234001", ("+48221234001",))
BOB = account("481234002", ("+48221234002", "+48581234002"))
CAROL = account("481234003", ("+48581234003",))
DAVE = account("481234004", ("+48221234004",))
ERIN = account("481234005", ("+48611234005",))  # Poznan: no pool


@pytest.fixture
def database(tmp_path):
    return create_database(tmp_path / "kamailio.sqlite")


def temporary(database) -> dict[str, str]:
    """login -> its temporary number."""
    return {
        login: number
        for number, login, kind, state in dump(database)["sipwave_number"]
        if kind == "temporary" and state == "temporary"
    }


def outcome(result, login) -> dict:
    rows = [dict(zip(OUTCOME_COLUMNS, row, strict=True)) for row in outcome_rows(result)]
    return next(row for row in rows if row["login"] == login)


def test_each_account_gets_the_lowest_free_number_of_its_first_numbers_area(database):
    result = run(database, [ALICE, BOB, CAROL], **POOLS)

    assert temporary(database) == {
        "481234001": "+48225550900",
        "481234002": "+48225550901",  # its first number is in Warsaw
        "481234003": "+48585550900",
    }
    assert outcome(result, "481234001")["temporary_number"] == "+48225550900"
    assert outcome(result, "481234001")["temporary_held"] == "+48225550900"
    assert result.reconciliation["ok"]
    assert result.reconciliation["temporary_numbers"] == 3
    # its own numbers stay with the old operator until they are ported
    states = {(n, kind): s for n, _login, kind, s in dump(database)["sipwave_number"]}
    assert states[("+48221234002", "number")] == "legacy"


def test_a_second_run_assigns_none_and_changes_nothing(database):
    run(database, [ALICE, BOB, CAROL], **POOLS)
    before = dump(database)

    again = run(database, [ALICE, BOB, CAROL], **POOLS)

    assert not again.changed
    assert dump(database) == before
    assert outcome(again, "481234001")["temporary_number"] is None
    # still held: what a carrier that screens caller numbers is shown (dial-in rows)
    assert outcome(again, "481234001")["temporary_held"] == "+48225550900"


def test_the_routing_cache_routes_the_temporary_number_and_knows_it_per_identity(database):
    run(database, [ALICE], **POOLS)

    with sqlite3.connect(database) as connection:
        view = routing_view(connection.cursor())

    assert view["n:48225550900"] == (0, f"481234001@{LEGACY}")
    assert view[f"t:481234001@{LEGACY}"] == (0, "+48225550900")
    # the account's own number still routes, and is still what dial-in knows it by
    assert view["n:48221234001"] == (0, f"481234001@{LEGACY}")
    assert view[f"a:481234001@{LEGACY}"] == (0, "+48221234001")


def test_phase2_moves_the_temporary_number_with_the_identity(database):
    run(database, [ALICE], **POOLS)
    consent(database, **{"481234001": "migrate"})

    run(database, [ALICE], phase=2, **POOLS)

    assert temporary(database) == {"481234001": "+48225550900"}
    with sqlite3.connect(database) as connection:
        view = routing_view(connection.cursor())
    assert view["n:48225550900"] == (0, f"tnf481234001@{NEW}")
    assert view[f"t:tnf481234001@{NEW}"] == (0, "+48225550900")
    assert f"t:481234001@{LEGACY}" not in view


def test_no_pool_for_the_area_or_an_empty_pool_is_reported_not_fatal(database):
    result = run(database, [ALICE, BOB, DAVE, ERIN, CAROL], **POOLS)

    assert outcome(result, "481234004")["temporary_number"] == "+48225550902"
    assert outcome(result, "481234005")["temporary_missing"] is True  # no Poznan pool
    assert outcome(result, "481234003")["temporary_number"] == "+48585550900"
    assert result.reconciliation["ok"]
    assert dump(database)["sipwave_account"][4][1] == "phase1"  # ERIN is served all the same


def test_an_exhausted_pool_leaves_the_last_account_without_one(database):
    run(database, [ALICE, BOB, DAVE], **POOLS)

    result = run(database, [ALICE, BOB, DAVE, account("481234006", ("+48221234006",))], **POOLS)

    assert outcome(result, "481234006")["temporary_missing"] is True
    assert len(set(temporary(database).values())) == 3


def test_without_pools_no_account_gets_or_misses_one(database):
    result = run(database, [ALICE])

    assert temporary(database) == {}
    assert outcome(result, "481234001")["temporary_missing"] is None


def test_closure_returns_the_number_which_rests_in_quarantine(database):
    run(database, [ALICE, BOB], **POOLS)
    consent(database, **{"481234001": "close"})
    closed = run(database, [ALICE, BOB], phase=2, **POOLS)

    assert outcome(closed, "481234001")["temporary_returned"] == "+48225550900"
    assert "481234001" not in temporary(database)
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT number, returned_on FROM sipwave_number_quarantine")
        assert rows.fetchall() == [("+48225550900", TODAY.isoformat())]

    # within the quarantine a new account gets the next free number, after it this one
    soon = run(database, [ALICE, BOB, DAVE], phase=2, today=TODAY + timedelta(days=29),
               quarantine_days=30, **POOLS)  # fmt: skip
    assert outcome(soon, "481234004")["temporary_number"] == "+48225550902"
    later = run(database, [account("481234007", ("+48221234007",))],
                today=TODAY + timedelta(days=30), quarantine_days=30, **POOLS)  # fmt: skip
    assert outcome(later, "481234007")["temporary_number"] == "+48225550900"


def test_numbers_served_here_give_the_temporary_number_back_and_stay_active(database):
    run(database, [ALICE], **POOLS)
    with sqlite3.connect(database) as connection:  # what porting does (a later step)
        connection.execute(
            "UPDATE sipwave_number SET state = 'active' WHERE number = '+48221234001'"
        )

    result = run(database, [ALICE], **POOLS)

    assert outcome(result, "481234001")["temporary_returned"] == "+48225550900"
    assert temporary(database) == {}
    assert ("+48221234001", "481234001", "number", "active") in dump(database)["sipwave_number"]
    assert result.reconciliation["ok"]


def test_rollback_returns_the_numbers_to_the_pool(database):
    before = dump(database)
    run(database, [ALICE, BOB, CAROL], **POOLS)

    rollback(database)

    assert dump(database) == before
    assert temporary(database) == {}
    # free again at once: they were never given back by a closure
    result = run(database, [DAVE], **POOLS)
    assert outcome(result, "481234004")["temporary_number"] == "+48225550900"


def test_rollback_leaves_a_number_that_meanwhile_went_to_another_account(database):
    run(database, [ALICE], wave="wave0", **POOLS)
    consent(database, **{"481234001": "close"})
    # wave1's snapshot records ALICE holding +48225550900; its run returns the number
    run(database, [ALICE], wave="wave1", phase=2, **POOLS)
    run(database, [DAVE], wave="wave2", today=TODAY + timedelta(days=40), **POOLS)
    assert temporary(database) == {"481234004": "+48225550900"}

    result = rollback(database)  # wave1: ALICE back to before its closure

    assert temporary(database) == {"481234004": "+48225550900"}
    assert dump(database)["sipwave_account"][0][:2] == ("481234001", "phase1")
    assert result.reconciliation["ok"]


def test_the_database_refuses_one_temporary_number_for_two_accounts(database):
    run(database, [ALICE], **POOLS)

    with sqlite3.connect(database) as connection, pytest.raises(sqlite3.IntegrityError):
        connection.execute(
            "INSERT INTO sipwave_number (number, login, kind, state) "
            "VALUES ('+48225550900', '481234009', 'temporary', 'temporary')"
        )


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ({"area": "4822", "first": "+48225550900", "last": "+48225550901"}, "area '4822' is not"),
        ({"area": "+4822", "first": "+48585550900", "last": "+48585550901"}, "numbers of area"),
        ({"area": "+4822", "first": "+48225550909", "last": "+48225550901"}, "first not after"),
        ({"area": "+4822", "first": "+4822000000", "last": "+48229999999"}, "of one length"),
        ({"area": "+48", "first": "+48000000000", "last": "+48999999999"}, "at most 100000"),
        ("+48225550900", "not a mapping"),
    ],
)
def test_a_bad_pool_is_refused_naming_the_entry_and_reason(entry, reason):
    with pytest.raises(MigrationError) as refused:
        temporary_pools([{"area": "+4858", "first": "+48585550900", "last": "+48585550909"}, entry])

    assert "temporary_numbers[1]: " in str(refused.value)
    assert reason in str(refused.value)


def test_overlapping_pools_are_refused():
    with pytest.raises(MigrationError, match="overlap"):
        temporary_pools([
            {"area": "+4822", "first": "+48225550900", "last": "+48225550909"},
            {"area": "+48225", "first": "+48225550905", "last": "+48225550999"},
        ])  # fmt: skip


def test_a_number_an_alias_routes_is_never_handed_out(database):
    with sqlite3.connect(database) as connection:  # an alias the engine did not write
        connection.execute(
            "INSERT INTO dbaliases (alias_username, alias_domain, username, domain) "
            f"VALUES ('48225550900', '{LEGACY}', 'pbx-fax', '{LEGACY}')"
        )

    result = run(database, [ALICE], **POOLS)

    assert outcome(result, "481234001")["temporary_number"] == "+48225550901"
