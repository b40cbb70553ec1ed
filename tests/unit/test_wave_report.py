"""One report per wave run, merged across hosts, with a completeness marker."""

import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

from ansible_collections.sipwave.platform.plugins.module_utils.wave_report import (
    add_host_result,
    merge_host_result,
)
from wave_helpers import PROJECT

HOSTS = ["proxy1", "proxy2"]


def host_result(changed: bool = True, **overrides) -> dict:
    """What the action plugin has of one host's run (the module's result, unpacked)."""
    action = "closed" if changed else "unchanged"
    result = {
        "operation": "apply", "wave": "wave2", "phase": 2, "run_id": "20261207T100000Z-abc123",
        "today": "2026-12-07", "changed": changed, "routing_generation": 4,
        "counts": {"accounts": 2, "outcomes": {action: 1, "unchanged": 1}},
        "reconciliation": {"ok": True, "accounts": 2, "accounts_in_one_state": 2},
        "accounts": [
            {"login": "481200007", "action": action, "state": "closed",
             **({"refund": "186.68"} if changed else {})},
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


def test_a_rerun_after_a_kill_reports_the_change_of_the_host_that_made_it():
    # proxy1 closed the account in the killed run; proxy2 closes it in the re-run
    report = merge_host_result(None, "proxy1", host_result(changed=False), HOSTS)
    report = merge_host_result(report, "proxy2", host_result(changed=True), HOSTS)

    closed = next(a for a in report["accounts"] if a["login"] == "481200007")
    assert closed["action"] == "closed"
    assert closed["refund"] == "186.68"
    refund = {"login": "481200007", "amount": "186.68"}
    assert report["refunds"] == {"total": "186.68", "accounts": [refund]}
    assert report["hosts"]["proxy1"]["changed"] is False
    assert report["hosts"]["proxy2"]["changed"] is True


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


def test_notifications_refuse_an_incomplete_report(tmp_path):
    report = merge_host_result(None, "proxy1", host_result(wave="wave1"), HOSTS)
    (tmp_path / "wave1-20261207T100000Z-abc123.json").write_text(json.dumps(report))

    completed = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "playbooks/notify_wave.yml",
         "-e", "wave=wave1", "-e", "notification=closure", "-e", f"sipwave_report_dir={tmp_path}",
         "-e", f"sipwave_notification_log={tmp_path}/sent.jsonl"],
        cwd=PROJECT, capture_output=True, text=True, check=False,
        env={"PATH": "/usr/bin:/bin", "ANSIBLE_NOCOLOR": "1"},
    )  # fmt: skip

    output = " ".join(completed.stdout.split())
    assert completed.returncode != 0
    assert "is the report of an incomplete run (no result from proxy2)" in output
    assert not (tmp_path / "sent.jsonl").exists()
