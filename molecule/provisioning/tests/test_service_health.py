"""playbooks/health.yml on the real provisioning server (runs after test_rollback_host.py):
nginx is ok while it runs and answers over HTTPS as its current release configures, its
certificate's expiry is shown and becomes a warning under the configured days, and a stopped
nginx is down and fails the run. nginx runs again at the end."""

from __future__ import annotations

import re

from conftest import PROV_CONTAINER, in_container
from sipwave_testlib.playbooks import run_playbook


def nginx_line(output: str) -> str:
    found = re.findall(rf"(\w+)\s+{PROV_CONTAINER}\s+nginx\s+([^\"\n]+)", output)
    assert len(found) >= 1, output[-3000:]
    state, detail = found[-1]
    return f"{state} {detail.strip()}"


def test_nginx_serving_with_a_valid_certificate_is_ok():
    run = run_playbook("health.yml")

    assert run.returncode == 0, run.stdout[-3000:]
    line = nginx_line(run.stdout)
    assert re.match(r"ok systemd: active, HTTPS: 200; certificate expires \S+Z \(\d+ days left\)",
                    line), line  # fmt: skip


def test_a_certificate_closer_to_expiry_than_the_warning_days_is_a_warning():
    run = run_playbook("health.yml", {"provisioning_certificate_warn_days": 100000})

    assert run.returncode == 0, run.stdout[-3000:]
    assert nginx_line(run.stdout).startswith("warning systemd: active, HTTPS: 200;")


def test_a_stopped_nginx_is_down_and_fails_the_run():
    stopped = in_container(PROV_CONTAINER, "systemctl", "stop", "nginx")
    assert stopped.returncode == 0, stopped.stderr
    try:
        run = run_playbook("health.yml")
    finally:
        started = in_container(PROV_CONTAINER, "systemctl", "start", "nginx")
    assert started.returncode == 0, started.stderr
    assert run.returncode != 0
    assert nginx_line(run.stdout).startswith("down systemd: inactive, HTTPS: no answer")
    assert "service(s) down" in run.stdout
    again = run_playbook("health.yml")
    assert again.returncode == 0 and nginx_line(again.stdout).startswith("ok "), again.stdout[
        -3000:
    ]
