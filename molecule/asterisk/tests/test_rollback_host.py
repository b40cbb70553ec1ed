"""Host rollback of the PBX (playbooks/rollback_host.yml) on the real Asterisk: deploy A (the
converged release), deploy B, roll back: Asterisk runs A again, without a restart, and serves
dial-in calls; refused without --limit and on a host without a previous release, changing
nothing there. The PBX ends on A, as converged, for the tests after this file."""

import re

import pytest
from conftest import PBX_CONTAINER, asterisk_pid, dial_in, pbx, run_playbook
from sipwave_testlib.playbooks import run_playbook as run_named_playbook

ROOT = "/etc/asterisk/sipwave"
DESTINATION = "123456789"


def release_of(pointer: str) -> str:
    return pbx("readlink", f"{ROOT}/{pointer}").strip().rsplit("/", 1)[-1]


def dial_timeout() -> str:
    """The dial-in dialplan's Dial() timeout as Asterisk has it loaded."""
    shown = pbx("asterisk", "-rx", "dialplan show sipwave-from-proxy")
    found = re.findall(r"@sipwave-carrier,(\d+),", shown)
    assert found, shown
    return found[0]


def rollback(*options: str):
    return run_named_playbook("rollback_host.yml", options=options)


@pytest.fixture(scope="module")
def deployed_twice():
    """B differs from A in the dial-in Dial() timeout, which Asterisk applies on a reload."""
    release_a, timeout_a = release_of("current"), dial_timeout()
    run = run_playbook({"asterisk_dialin_dial_timeout_s": int(timeout_a) + 7})
    assert run.returncode == 0, run.stdout[-3000:]
    release_b = release_of("current")
    assert release_b != release_a and release_of("previous") == release_a
    assert dial_timeout() == str(int(timeout_a) + 7)
    return release_a, release_b, timeout_a


def test_a_rollback_without_limit_is_refused_and_changes_nothing(deployed_twice):
    _a, release_b, _timeout = deployed_twice
    run = rollback()
    assert run.returncode != 0
    assert "Name the hosts to roll back with --limit" in run.stdout
    assert release_of("current") == release_b


def test_a_pbx_without_a_previous_release_is_refused_and_keeps_running(deployed_twice):
    _a, release_b, _timeout = deployed_twice
    pid = asterisk_pid()
    pbx("mv", f"{ROOT}/previous", f"{ROOT}/previous.hidden")
    try:
        run = rollback("--limit", PBX_CONTAINER)
    finally:
        pbx("mv", f"{ROOT}/previous.hidden", f"{ROOT}/previous")
    assert run.returncode != 0
    assert "has no previous release to roll back to" in run.stdout
    assert release_of("current") == release_b and asterisk_pid() == pid


def test_rollback_runs_the_previous_release_without_a_restart_and_serves(deployed_twice, carrier):
    release_a, release_b, timeout_a = deployed_twice
    pid = asterisk_pid()
    run = rollback("--limit", PBX_CONTAINER)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "Check that Asterisk runs what this release configures" in run.stdout
    assert release_of("current") == release_a and release_of("previous") == release_b
    assert dial_timeout() == timeout_a
    assert asterisk_pid() == pid, "a reload keeps calls in progress: no restart"
    call = dial_in("601000003", entries=[DESTINATION])
    assert call.successful == 1, call.output
    assert carrier.answered().successful == 1
