"""Host rollback (playbooks/rollback_host.yml) on the real proxy: deploy A (the converged
release), deploy B, roll back: the host runs A again and serves; refused without --limit and
on a host without a previous release, changing nothing there."""

import pytest
from conftest import CONTAINER, PROXY, main_pid, register_row, run_playbook
from sipwave_testlib import sipp
from sipwave_testlib.playbooks import run_playbook as run_named_playbook

ROOT = "/etc/kamailio/sipwave"


def release_of(host, pointer: str) -> str:
    return host.check_output(f"readlink {ROOT}/{pointer}").rsplit("/", 1)[-1]


def receivers(host) -> int:
    """Kamailio's SIP receiver processes (kamailio_children per UDP socket, TCP's)."""
    return int(host.check_output("kamcmd -s unix:/run/kamailio/kamailio_ctl core.psx | "
                                 "grep -c 'receiver'"))  # fmt: skip


def rollback(*options: str):
    return run_named_playbook("rollback_host.yml", options=options)


def registers(address: str) -> bool:
    result = sipp.run(
        "register.xml", PROXY, address, rows=[register_row("legacy-b", f"{address}:5099")]
    )
    return result.successful == 1


@pytest.fixture(scope="module")
def deployed_twice(host):
    """A is the converged release; B differs in kamailio.cfg (one more receiver per socket),
    so the rollback has to restart Kamailio to run A."""
    release_a, receivers_a = release_of(host, "current"), receivers(host)
    run = run_playbook({"kamailio_children": 3})
    assert run.returncode == 0, run.stdout[-3000:]
    release_b = release_of(host, "current")
    assert release_b != release_a and release_of(host, "previous") == release_a
    assert receivers(host) > receivers_a
    return release_a, release_b, receivers_a


def test_a_rollback_without_limit_is_refused_and_changes_nothing(host, deployed_twice):
    _a, release_b, _ = deployed_twice
    pid = main_pid(host)
    run = rollback()
    assert run.returncode != 0
    assert "Name the hosts to roll back with --limit" in run.stdout
    assert release_of(host, "current") == release_b and main_pid(host) == pid


def test_a_host_without_a_previous_release_is_refused_and_keeps_serving(host, deployed_twice):
    _a, release_b, _ = deployed_twice
    pid = main_pid(host)
    host.check_output(f"mv {ROOT}/previous {ROOT}/previous.hidden")
    try:
        run = rollback("--limit", CONTAINER)
    finally:
        host.check_output(f"mv {ROOT}/previous.hidden {ROOT}/previous")
    assert run.returncode != 0
    assert "has no previous release to roll back to" in run.stdout
    assert release_of(host, "current") == release_b and main_pid(host) == pid
    assert registers("127.0.20.111")


def test_rollback_runs_the_previous_release_and_the_proxy_serves(host, deployed_twice):
    release_a, release_b, receivers_a = deployed_twice
    pid = main_pid(host)
    run = rollback("--limit", CONTAINER)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "Check that the proxy answers SIP OPTIONS" in run.stdout
    assert release_of(host, "current") == release_a
    assert release_of(host, "previous") == release_b
    assert main_pid(host) != pid, "kamailio.cfg differs: Kamailio must have restarted"
    assert receivers(host) == receivers_a
    assert registers("127.0.20.112")
