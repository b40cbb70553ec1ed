"""The `sipwave` command on the scenario's real proxies (runs after test_restore.py: the waves
have reports and every proxy has a backup): the wave status from the reports and databases,
and a backup of one proxy with its copy on the controller, each with exit code, per-host
stats and the paths the run wrote in the --json result."""

import json
import os
from pathlib import Path

from conftest import PROXY2_CONTAINER, PROXY_CONTAINER, PROXY_CONTAINERS
from sipwave_testlib.playbooks import run_sipwave


def result_of(*args: str) -> dict:
    run = run_sipwave(*args)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return json.loads(run.stdout)


def test_wave_status_shows_each_wave_from_its_newest_report_and_changes_nothing():
    result = result_of("wave", "status")
    reports = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "reports"
    newest = {wave: sorted(reports.glob(f"{wave}-2*.json"))[-1] for wave in ("wave1", "wave2")}
    status = {entry["wave"]: entry for entry in result["data"]["wave_status"]}
    for wave, report in newest.items():
        data = json.loads(report.read_text())
        assert status[wave]["report"] == str(report)
        assert status[wave]["last_run"] == data["run_id"]
        assert status[wave]["complete"] == data["complete"]
        assert status[wave]["states"] == data["counts"]["states"]
    assert result["reports"] == sorted(str(path) for path in newest.values())
    assert set(result["data"]["database_states"]) == set(PROXY_CONTAINERS)
    assert sum(result["data"]["database_states"][PROXY_CONTAINER].values()) >= 240
    assert {host: counts["changed"] for host, counts in result["hosts"].items()} == {
        PROXY_CONTAINER: 0, PROXY2_CONTAINER: 0, "localhost": 0,
    }  # fmt: skip


def test_a_backup_of_one_proxy_through_the_command_lands_on_the_controller():
    result = result_of("backup", "run", "--limit", PROXY_CONTAINER)
    assert list(result["hosts"]) == [PROXY_CONTAINER]
    assert result["hosts"][PROXY_CONTAINER]["failed"] == 0
    assert result["hosts"][PROXY_CONTAINER]["changed"] >= 1
    (copy,) = result["reports"]
    assert Path(copy).is_file() and Path(copy).stat().st_mode & 0o077 == 0
    listed = {entry["host"]: entry for entry in result_of("backup", "list")["data"]["backups"]}
    assert listed[PROXY_CONTAINER]["file"] == copy
    assert listed[PROXY2_CONTAINER]["file"]  # test_restore.py's backup
