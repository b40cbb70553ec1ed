"""playbooks/health.yml (what `sipwave health` runs) against the scenario's real proxy, PBX and
Prometheus: every service ok after a backup; with Asterisk stopped, the PBX is down and the
run fails; the same state goes to the caller as set_stats data."""

import json
import re
import time

import pytest
from conftest import PBX_CONTAINER, PROXY_CONTAINER, pbx, run_playbook

# A summary line as the debug task prints it (in a JSON or YAML list): state host service.
STATE_LINE = re.compile(r"^\s*(?:- )?[\"']?(ok|warning|down) +(\S+) +(\S+) ", re.M)


def health(monkeypatch) -> tuple[int, dict[tuple[str, str], str], str]:
    """The run's exit code, the states of its set_stats data `health` (what the CLI reads)
    and its output; the printed lines must say the same."""
    monkeypatch.setenv("ANSIBLE_SHOW_CUSTOM_STATS", "true")
    run = run_playbook(playbook="health.yml")
    stats = next(line for line in run.stdout.splitlines() if line.strip().startswith("RUN: {"))
    data = json.loads(stats.split("RUN:", 1)[1])["health"]
    states = {
        (host, service): result["state"]
        for host, services in data.items()
        for service, result in services.items()
    }
    printed = {(host, service): state for state, host, service in STATE_LINE.findall(run.stdout)}
    assert printed == states, run.stdout[-4000:]
    return run.returncode, states, run.stdout


def test_a_healthy_platform_is_all_ok(monkeypatch):
    backup = run_playbook(playbook="backup.yml")
    assert backup.returncode == 0, backup.stdout[-3000:]
    returncode, states, output = health(monkeypatch)
    assert states == {
        (PROXY_CONTAINER, "kamailio"): "ok",
        (PROXY_CONTAINER, "backup"): "ok",
        (PROXY_CONTAINER, "prometheus"): "ok",
        (PBX_CONTAINER, "asterisk"): "ok",
    }, output[-4000:]
    assert returncode == 0
    stats = output[output.rindex("CUSTOM STATS") :]
    assert "health" in stats and "kamailio" in stats, stats[:2000]


@pytest.fixture
def asterisk_stopped():
    pbx("systemctl", "stop", "asterisk")
    yield
    pbx("systemctl", "start", "asterisk")
    deadline = time.monotonic() + 60
    while "fully booted" not in pbx("asterisk", "-rx", "core waitfullybooted"):
        assert time.monotonic() < deadline, "Asterisk did not come back"
        time.sleep(1)


def test_a_stopped_pbx_is_down_and_fails_the_run(monkeypatch, asterisk_stopped):
    returncode, states, output = health(monkeypatch)
    assert states[(PBX_CONTAINER, "asterisk")] == "down", output[-4000:]
    assert states[(PROXY_CONTAINER, "kamailio")] == "ok"
    assert returncode != 0
    assert "1 service(s) down" in output
