"""number_forwarding: the pairs read from a proxy's number inventory, and the legacy
platform's forwarding table kept equal to them. Real SQLite files, the module run as Ansible
runs it."""

import json
import sqlite3
from pathlib import Path

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils.wave.model import TemporaryPool
from module_runner import run_module_file
from wave_helpers import account, consent, create_database, routing_view, run

MODULE = (
    Path(__file__).resolve().parents[2]
    / "collections/ansible_collections/sipwave/platform/plugins/modules/number_forwarding.py"
)
POOLS = {"temporary_pools": (TemporaryPool("+4822", "+48225559000", "+48225559009"),)}
ALICE = account("481234001", ("+48221234001", "+48221234011"))
BOB = account("481234002", ("+48221234002",))


def run_module(tmp_path: Path, args: dict, *, check=False, diff=False) -> dict:
    completed = run_module_file(MODULE, tmp_path, args, check=check, diff=diff)
    result = json.loads(completed.stdout)
    return result


@pytest.fixture
def proxy(tmp_path):
    return create_database(tmp_path / "proxy.sqlite")


@pytest.fixture
def legacy(tmp_path):
    return create_database(tmp_path / "legacy.sqlite")


def forwarding(database) -> list[tuple[str, str]]:
    with sqlite3.connect(database) as connection:
        return sorted(connection.execute("SELECT number, target FROM sipwave_forwarding"))


def test_read_lists_every_legacy_number_of_an_account_with_a_temporary_one(tmp_path, proxy):
    run(proxy, [ALICE, BOB], **POOLS)

    result = run_module(tmp_path, {"database": str(proxy)})

    assert not result.get("failed"), result
    assert json.loads(result["forwarding"]) == [
        ["+48221234001", "+48225559000"],
        ["+48221234002", "+48225559001"],
        ["+48221234011", "+48225559000"],
    ]
    assert result["count"] == 3


def test_read_leaves_out_closed_accounts_and_accounts_without_a_temporary_number(tmp_path, proxy):
    run(proxy, [ALICE, BOB], **POOLS)
    consent(proxy, **{"481234001": "close"})
    run(proxy, [ALICE, BOB], phase=2, **POOLS)
    run(proxy, [account("481234003", ("+48581234003",))], wave="wave2", **POOLS)  # no pool

    result = run_module(tmp_path, {"database": str(proxy)})

    assert json.loads(result["forwarding"]) == [["+48221234002", "+48225559001"]]


def test_read_before_any_wave_or_database_finds_nothing(tmp_path, proxy):
    assert run_module(tmp_path, {"database": str(proxy)})["count"] == 0
    missing = run_module(tmp_path, {"database": str(tmp_path / "none.sqlite")})
    assert (missing["changed"], missing["forwarding"]) == (False, "[]")


def test_apply_makes_the_table_exactly_the_pairs_and_counts_the_generation(tmp_path, legacy):
    pairs = [["+48221234001", "+48225559000"], ["+48221234002", "+48225559001"]]
    args = {"operation": "apply", "database": str(legacy), "forwarding": json.dumps(pairs)}

    first = run_module(tmp_path, args, diff=True)
    again = run_module(tmp_path, args)
    moved = run_module(tmp_path, args | {"forwarding": json.dumps(
        [["+48221234002", "+48225559005"], ["+48221234003", "+48225559002"]]
    )})  # fmt: skip

    assert first["changed"] and first["added"] == pairs
    assert first["diff"]["after"] == "+48221234001 -> +48225559000\n+48221234002 -> +48225559001\n"
    assert not again["changed"]
    assert again["routing_generation"] == first["routing_generation"] == 1
    assert moved["removed"] == [["+48221234001", "+48225559000"]]
    assert moved["changed_targets"] == [["+48221234002", "+48225559001", "+48225559005"]]
    assert moved["routing_generation"] == 2
    assert forwarding(legacy) == [
        ("+48221234002", "+48225559005"),
        ("+48221234003", "+48225559002"),
    ]
    with sqlite3.connect(legacy) as connection:
        view = routing_view(connection.cursor())
    assert view["f:48221234002"] == (0, "+48225559005")
    assert "f:48221234001" not in view


def test_check_mode_shows_the_change_and_writes_nothing(tmp_path, legacy):
    args = {
        "operation": "apply",
        "database": str(legacy),
        "forwarding": json.dumps([["+48221234001", "+48225559000"]]),
    }
    result = run_module(tmp_path, args, check=True)
    assert result["changed"] and result["added"] == [["+48221234001", "+48225559000"]]
    assert forwarding(legacy) == []


@pytest.mark.parametrize(
    ("forwarding_text", "reason"),
    [
        ("not json", "not JSON"),
        ('{"+48221234001": "+48225559000"}', "a list of"),
        ('[["+48221234001"]]', "forwarding[0]: not a [number, target] pair"),
        ('[["48221234001", "+48225559000"]]', "forwarding[0]: '48221234001' not E.164"),
        ('[["+48221234001", "+48221234001"]]', "forwards to itself"),
        ('[["+4822123", "+48225559000"], ["+4822123", "+48225559001"]]', "two targets"),
    ],
)
def test_bad_pairs_are_refused_naming_the_pair_and_nothing_is_written(
    tmp_path, legacy, forwarding_text, reason
):
    result = run_module(
        tmp_path, {"operation": "apply", "database": str(legacy), "forwarding": forwarding_text}
    )
    assert result["failed"]
    assert reason in result["msg"]
    assert forwarding(legacy) == []


def test_check_mode_on_a_host_without_its_database_creates_nothing(tmp_path):
    missing = tmp_path / "legacy-not-deployed.sqlite"
    args = {
        "operation": "apply",
        "database": str(missing),
        "forwarding": json.dumps([["+48221234001", "+48225559000"]]),
    }
    checked = run_module(tmp_path, args, check=True)
    assert checked["changed"] and checked["added"] == [["+48221234001", "+48225559000"]]
    assert not missing.exists()
    assert "does not exist: deploy the kamailio role" in run_module(tmp_path, args)["msg"]
