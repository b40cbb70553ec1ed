"""module_utils.bulk.Aside (work in a forked child) and the wave run that reconciles aside."""

import os
import time

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils.bulk import Aside
from ansible_collections.sipwave.platform.plugins.module_utils.wave import run as wave_run
from wave_helpers import create_database, run, wave_accounts


def no_children_left() -> bool:
    """No child of this process, running or ended and not waited for."""
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def test_the_childs_value_comes_back_after_a_json_round_trip():
    aside = Aside(lambda rows: {"sum": sum(rows), "rows": tuple(rows)}, [1, 2, 3])
    assert aside.result() == {"sum": 6, "rows": [1, 2, 3]}
    assert no_children_left()


def test_a_failing_child_gives_no_result_and_leaves_no_process():
    def fails():
        raise ValueError("no")

    assert Aside(fails).result() is None
    assert no_children_left()


def test_a_cancelled_child_is_stopped_at_once():
    started = time.monotonic()
    aside = Aside(time.sleep, 60)
    aside.cancel()
    aside.cancel()  # twice is harmless
    assert aside.result() is None
    assert time.monotonic() - started < 30
    assert no_children_left()


@pytest.mark.parametrize("check", [False, True])
def test_a_run_reconciled_aside_says_what_one_reconciled_in_place_says(
    tmp_path, monkeypatch, check
):
    accounts = wave_accounts()
    answered = []

    class Recorded(Aside):
        def result(self):
            answered.append(super().result())
            return answered[-1]

    monkeypatch.setattr(wave_run, "Aside", Recorded)
    results = {}
    for name, threshold in (("aside", 1), ("in place", 10**9)):
        monkeypatch.setattr(wave_run, "RECONCILE_ASIDE_FROM", threshold)
        database = create_database(tmp_path / f"{name}.sqlite")
        first = run(database, accounts, check=check)  # changes: reconciled after the run
        again = run(database, accounts, check=check)  # changes nothing: the child's answer
        results[name] = (first.reconciliation, again.reconciliation, again.changed)
    assert results["aside"] == results["in place"]
    assert results["aside"][1]["ok"] and results["aside"][1]["accounts"] == len(accounts)
    assert results["aside"][2] is check  # check mode wrote nothing: the second run plans again
    # Only a run that changed nothing takes the child's answer (here: the second real run).
    assert answered == ([] if check else [results["aside"][1]])
    assert no_children_left()
