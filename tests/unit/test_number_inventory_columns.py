"""The number inventory's site and carrier columns: a number's site is the kamailio_sites entry
whose area is its longest prefix, a temporary number's carrier is its pool's, an own number
has none while it is at the old operator. The wave writes them with the rows it changes, a
re-run leaves them alone and a rollback restores them. Real SQLite files."""

import sqlite3

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils.account_view import account_view
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db import (
    connection as dbconn,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.model import (
    MigrationError,
    TemporaryPool,
    site_areas,
    temporary_pools,
)
from wave_helpers import account, consent, create_database, rollback, run

SITES = site_areas([
    {"name": "warsaw", "areas": ["+4822"]},
    {"name": "warsaw_centre", "areas": ["+482212"]},
    {"name": "gdansk", "areas": ["+4858"]},
])  # fmt: skip
POOLS = (
    TemporaryPool("+4822", "+48225550900", "+48225550909", "carrier_waw"),
    TemporaryPool("+4858", "+48585550900", "+48585550909"),
)
CONFIG = {"temporary_pools": POOLS, "site_areas": SITES}
ALICE = account("481234001", ("+48221234001",))
BOB = account("481234002", ("+48581234002", "+48611234002"))  # Poznan: no site


@pytest.fixture
def database(tmp_path):
    return create_database(tmp_path / "kamailio.sqlite")


def inventory(database) -> list[tuple]:
    with sqlite3.connect(database) as connection:
        return sorted(connection.execute(
            "SELECT number, login, kind, state, site, carrier FROM sipwave_number"
        ).fetchall())  # fmt: skip


AFTER_PHASE1 = [
    ("+48221234001", "481234001", "number", "legacy", "warsaw_centre", ""),
    ("+48225550900", "481234001", "temporary", "temporary", "warsaw", "carrier_waw"),
    ("+48581234002", "481234002", "number", "legacy", "gdansk", ""),
    ("+48585550900", "481234002", "temporary", "temporary", "gdansk", ""),
    ("+48611234002", "481234002", "number", "legacy", "", ""),
]


def test_the_wave_writes_each_numbers_site_and_carrier(database):
    run(database, [ALICE, BOB], **CONFIG)

    assert inventory(database) == AFTER_PHASE1


def test_a_rerun_changes_no_column(database):
    run(database, [ALICE, BOB], **CONFIG)

    result = run(database, [ALICE, BOB], **CONFIG)

    assert inventory(database) == AFTER_PHASE1
    assert not any(plan.changed for plan in result.plans)


def test_a_rollback_restores_the_columns(database):
    run(database, [ALICE, BOB], wave="wave0", **CONFIG)
    consent(database, **{"481234001": "close"})
    run(database, [ALICE], wave="wave1", phase=2, **CONFIG)
    assert ("+48225550900", "481234001", "temporary", "temporary", "warsaw", "carrier_waw") not in (
        inventory(database)
    )

    rollback(database, **CONFIG)

    assert inventory(database) == AFTER_PHASE1


def test_account_show_shows_site_and_carrier(database):
    run(database, [ALICE], **CONFIG)
    conn = dbconn.connect("sqlite", database=str(database))
    try:
        numbers = account_view(conn, conn.connection.cursor(), "481234001")["numbers"]
    finally:
        conn.close()

    assert {"number": "+48225550900", "kind": "temporary", "state": "temporary",
            "site": "warsaw", "carrier": "carrier_waw"} in numbers  # fmt: skip


def test_a_pools_carrier_must_be_a_configured_carrier_named_with_its_entry():
    entry = {"area": "+4822", "first": "+48225550900", "last": "+48225550909"}
    assert temporary_pools([{**entry, "carrier": "waw"}], 0, ["waw"])[0].carrier == "waw"
    assert temporary_pools([entry], 0, ["waw"])[0].carrier == ""

    with pytest.raises(MigrationError, match=r"temporary_numbers\[0\]: carrier 'gone' is not"):
        temporary_pools([{**entry, "carrier": "gone"}], 0, ["waw"])


def test_a_bad_site_is_refused_naming_the_entry():
    with pytest.raises(MigrationError, match=r"kamailio_sites\[1\]: area '22' is not"):
        site_areas([{"name": "a", "areas": ["+4822"]}, {"name": "b", "areas": ["22"]}])
