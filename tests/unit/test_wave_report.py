"""One report per wave run, merged across hosts, with a completeness marker."""

import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils.wave_dialin import with_dialin
from ansible_collections.sipwave.platform.plugins.module_utils.wave_report import (
    add_host_result,
    merge_host_result,
)
from wave_helpers import PROJECT

HOSTS = ["proxy1", "proxy2"]
RUN = "20261207T100000Z-abc123"
KILLED_RUN = "20261207T093000Z-def456"


def host_result(changed: bool = True, closed_by: str = RUN, **overrides) -> dict:
    """What the action plugin has of one host's run (the module's result, unpacked): the
    account 481200007 closed by this run (changed) or by ``closed_by``, an earlier run."""
    action = "closed" if changed else "unchanged"
    result = {
        "operation": "apply", "wave": "wave2", "phase": 2, "run_id": RUN,
        "today": "2026-12-07", "changed": changed, "routing_generation": 4,
        "counts": {"accounts": 2, "outcomes": {action: 1, "unchanged": 1}},
        "reconciliation": {"ok": True, "accounts": 2, "accounts_in_one_state": 2},
        "accounts": [
            {"login": "481200007", "action": action, "state": "closed", "refund": "186.68",
             "refund_run": RUN if changed else closed_by, "closure_numbers": "released"},
            {"login": "481200001", "action": "unchanged", "state": "consent_pending",
             "identity": "481200001@ip.tanifon.pl"},
        ],
    }  # fmt: skip
    return result | overrides


def test_a_run_on_one_of_two_hosts_is_incomplete():
    report = merge_host_result(None, "proxy1", host_result(), HOSTS)

    assert report["complete"] is False
    assert report["incomplete_because"] == ["no result from proxy2"]
    assert report["hosts_reported"] == ["proxy1"]


def test_with_every_host_reported_alike_the_run_is_complete():
    report = merge_host_result(None, "proxy1", host_result(), HOSTS)
    report = merge_host_result(report, "proxy2", host_result(), HOSTS)

    assert report["complete"] is True
    assert report["incomplete_because"] == []
    assert sorted(report["hosts"]) == HOSTS
    assert report["counts"]["accounts"] == 2


def closed_account(report: dict) -> dict:
    return next(a for a in report["accounts"] if a["login"] == "481200007")


def test_a_rerun_after_a_kill_reports_the_change_of_the_host_that_made_it():
    # proxy1 closed the account in the killed run; proxy2 closes it in the re-run
    report = merge_host_result(None, "proxy1", host_result(False, KILLED_RUN), HOSTS)
    report = merge_host_result(report, "proxy2", host_result(changed=True), HOSTS)

    closed = closed_account(report)
    assert closed["action"] == "closed"
    # one refund, the one the killed run recorded first
    assert (closed["refund"], closed["refund_run"]) == ("186.68", KILLED_RUN)
    refund = {"login": "481200007", "amount": "186.68", "recorded_by": KILLED_RUN}
    assert report["refunds"] == {
        "total": "186.68",
        "accounts": [refund],
        "recorded_by_this_run": {"total": "0.00", "accounts": 0},
    }
    assert report["hosts"]["proxy1"]["changed"] is False
    assert report["hosts"]["proxy2"]["changed"] is True
    assert report["complete"] is True


def test_a_rerun_after_a_kill_that_closed_everywhere_still_lists_the_refund_once():
    report = merge_host_result(None, "proxy1", host_result(False, KILLED_RUN), HOSTS)
    report = merge_host_result(report, "proxy2", host_result(False, KILLED_RUN), HOSTS)

    closed = closed_account(report)
    assert (closed["action"], closed["state"]) == ("unchanged", "closed")
    assert (closed["refund"], closed["refund_run"]) == ("186.68", KILLED_RUN)
    assert report["refunds"]["accounts"] == [
        {"login": "481200007", "amount": "186.68", "recorded_by": KILLED_RUN}
    ]
    assert report["refunds"]["total"] == "186.68"
    assert report["refunds"]["recorded_by_this_run"] == {"total": "0.00", "accounts": 0}
    assert report["complete"] is True


def test_the_run_that_closes_an_account_reports_the_refund_as_its_own():
    report = merge_host_result(None, "proxy1", host_result(), HOSTS)
    report = merge_host_result(report, "proxy2", host_result(), HOSTS)

    assert report["refunds"]["recorded_by_this_run"] == {"total": "186.68", "accounts": 1}
    assert report["refunds"]["accounts"][0]["recorded_by"] == RUN


def test_hosts_that_recorded_different_refunds_disagree():
    other = host_result(False, KILLED_RUN)
    other["accounts"][0] = {**other["accounts"][0], "refund": "0.00"}
    report = merge_host_result(None, "proxy1", host_result(), HOSTS)
    report = merge_host_result(report, "proxy2", other, HOSTS)

    assert report["disagreements"] == ["481200007"]
    assert report["complete"] is False
    assert report["refunds"]["total"] == "186.68"


def test_closure_number_conflicts_of_the_hosts_reach_the_runs_reconciliation():
    conflicts = {
        "setting": "kept_for_porting",
        "count": 1,
        "accounts": [{"login": "481200007", "numbers": {"+48220000007": "released"}}],
    }
    reconciliation = {"ok": True, "closure_numbers_conflicts": conflicts}
    report = merge_host_result(None, "proxy1", host_result(reconciliation=reconciliation), HOSTS)
    report = merge_host_result(report, "proxy2", host_result(reconciliation=reconciliation), HOSTS)

    assert report["reconciliation"]["closure_numbers_conflicts"] == conflicts
    assert report["reconciliation"]["ok"] and report["complete"]


def test_hosts_whose_closures_left_the_numbers_apart_disagree():
    # a run killed after proxy1 kept the numbers for porting, re-run with released: proxy2
    # releases them, proxy1 keeps its decision; the report must not hide it
    kept = host_result(False, KILLED_RUN)
    kept["accounts"][0] = {**kept["accounts"][0], "closure_numbers": "kept_for_porting"}
    report = merge_host_result(None, "proxy1", kept, HOSTS)
    report = merge_host_result(report, "proxy2", host_result(), HOSTS)

    assert report["disagreements"] == ["481200007"]
    assert report["complete"] is False


# -- the dial-in section: part of a complete report when the run has PBX hosts -----------------

PBXS = ["pbx1", "pbx2"]


def dialin_section(hosts=PBXS, ok=True) -> dict:
    return {"source": "wave:wave2", "operation": "apply", "ok": ok,
            "hosts": {h: {"ok": ok} for h in hosts},
            "problems": [] if ok else ["pbx2: 1 of 2 dial-in numbers present"]}  # fmt: skip


def proxies_reported(dialin_hosts=PBXS) -> dict:
    report = merge_host_result(None, "proxy1", host_result(), HOSTS, dialin_hosts)
    return merge_host_result(report, "proxy2", host_result(), HOSTS, dialin_hosts)


def test_with_every_proxy_but_no_dial_in_section_the_run_is_incomplete():
    report = proxies_reported()

    assert report["complete"] is False
    assert report["reconciliation"]["dialin_hosts_expected"] == PBXS
    (reason,) = report["incomplete_because"]
    assert reason.startswith("no dial-in section (expected from pbx1, pbx2)")


def test_the_dial_in_section_of_every_pbx_completes_the_run():
    report = with_dialin(proxies_reported(), dialin_section())

    assert report["complete"] is True
    assert report["incomplete_because"] == []
    assert report["reconciliation"]["ok"] and report["reconciliation"]["dialin_ok"]


@pytest.mark.parametrize(
    ("section", "reason"),
    [(dialin_section(["pbx1"]), "no dial-in result from pbx2"),
     (dialin_section(ok=False), "dial-in not reconciled: pbx2: 1 of 2 dial-in numbers present")],
    ids=["a-pbx-missing", "not-reconciled"],
)  # fmt: skip
def test_a_dial_in_section_short_of_a_pbx_or_not_reconciled_leaves_the_run_incomplete(
    section, reason
):
    report = with_dialin(proxies_reported(), section)

    assert report["complete"] is False
    assert reason in report["incomplete_because"]


def test_a_run_without_pbx_hosts_is_complete_without_a_dial_in_section():
    report = proxies_reported(dialin_hosts=[])

    assert report["complete"] is True
    assert "dialin_hosts_expected" not in report["reconciliation"]


def test_a_host_result_added_after_the_dial_in_section_keeps_it_in_the_reconciliation():
    report = merge_host_result(None, "proxy1", host_result(), HOSTS, PBXS)
    report = with_dialin(report, dialin_section(ok=False))

    report = merge_host_result(report, "proxy2", host_result(), HOSTS, PBXS)

    assert report["reconciliation"]["dialin_ok"] is False
    assert report["reconciliation"]["ok"] is False
    assert report["complete"] is False


def test_hosts_that_disagree_on_an_account_make_the_report_incomplete():
    other = host_result()
    other["accounts"][1] = {**other["accounts"][1], "state": "phase2"}
    report = merge_host_result(None, "proxy1", host_result(), HOSTS)
    report = merge_host_result(report, "proxy2", other, HOSTS)

    assert report["complete"] is False
    assert report["disagreements"] == ["481200001"]


def test_a_failed_reconciliation_makes_the_report_incomplete():
    failed = host_result(failed=True, reconciliation={"ok": False, "problems": ["x: no row"]})
    report = merge_host_result(None, "proxy1", host_result(), HOSTS)
    report = merge_host_result(report, "proxy2", failed, HOSTS)

    assert report["complete"] is False
    assert report["incomplete_because"] == ["failed or not reconciled on proxy2"]
    assert report["reconciliation"]["hosts"] == {"proxy1": True, "proxy2": False}


def test_only_report_fields_are_kept():
    result = host_result(invocation={"module_args": {"db_password": "s3cret-db"}},
                         diff={"before": "x"})  # fmt: skip
    report = merge_host_result(None, "proxy1", result, ["proxy1"])

    assert "s3cret-db" not in json.dumps(report)
    assert "diff" not in json.dumps(report)


def _add(args):
    report_dir, host = args
    return add_host_result(report_dir, host, host_result(), [f"h{i}" for i in range(8)])


def test_hosts_finishing_at_once_all_land_in_the_one_report(tmp_path):
    hosts = [f"h{i}" for i in range(8)]
    with multiprocessing.get_context("fork").Pool(8) as pool:
        paths = set(pool.map(_add, [(str(tmp_path), host) for host in hosts]))

    (path,) = paths
    report = json.loads(Path(path).read_text())
    assert report["hosts_reported"] == hosts
    assert report["complete"] is True
    assert [p.name for p in tmp_path.iterdir()] == [Path(path).name]


def notify_closure_of_wave1(report_dir: Path) -> subprocess.CompletedProcess:
    """playbooks/notify_wave.yml for wave1's closure mails, reading reports in report_dir."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "playbooks/notify_wave.yml",
         "-e", "wave=wave1", "-e", "notification=closure", "-e", f"sipwave_report_dir={report_dir}",
         "-e", f"sipwave_notification_log={report_dir}/sent.jsonl"],
        cwd=PROJECT, capture_output=True, text=True, check=False,
        env={"PATH": "/usr/bin:/bin", "ANSIBLE_NOCOLOR": "1"},
    )  # fmt: skip


def test_notifications_refuse_an_incomplete_report(tmp_path):
    report = merge_host_result(None, "proxy1", host_result(wave="wave1"), HOSTS)
    (tmp_path / "wave1-20261207T100000Z-abc123.json").write_text(json.dumps(report))

    completed = notify_closure_of_wave1(tmp_path)

    output = " ".join(completed.stdout.split())
    assert completed.returncode != 0
    assert "is the report of an incomplete run (no result from proxy2)" in output
    assert not (tmp_path / "sent.jsonl").exists()


def test_notifications_refuse_a_report_without_the_dial_in_section_of_the_inventorys_pbxs(
    tmp_path,
):
    # A report that does not name its PBX hosts (written before reports did) looks complete;
    # the lab inventory has a PBX, so its missing dial-in section is still refused.
    report = merge_host_result(None, "proxy1", host_result(wave="wave1"), ["proxy1"])
    assert report["complete"] is True
    (tmp_path / "wave1-20261207T100000Z-abc123.json").write_text(json.dumps(report))

    completed = notify_closure_of_wave1(tmp_path)

    output = " ".join(completed.stdout.split())
    assert completed.returncode != 0
    assert "has no dial-in section, and the inventory has PBX hosts (pbx1)" in output
    assert not (tmp_path / "sent.jsonl").exists()


def test_a_run_of_one_account_is_reported_apart_from_the_wave(tmp_path):
    """An account moved or rolled back on its own (-e account=LOGIN) gets a report of its own
    that readers of "the wave's newest report" (notify, cutover, status, dial-in) skip: it
    does not hide the rest of the wave from them."""
    whole = add_host_result(str(tmp_path), "proxy1", host_result(), ["proxy1"])
    alone = add_host_result(
        str(tmp_path), "proxy1",
        host_result(run_id="20261207T110000Z-aaa111", limit_to=["481200001"]), ["proxy1"],
    )  # fmt: skip
    assert whole.endswith(f"wave2-{RUN}.json")
    assert alone.endswith("wave2-20261207T110000Z-aaa111.accounts.json")
    assert json.loads(Path(alone).read_text())["limit_to"] == ["481200001"]
    from ansible_collections.sipwave.platform.plugins.action.wave_dialin import newest_report

    assert newest_report(str(tmp_path), "wave2") == whole
