"""Host rollback of a provisioning server (playbooks/rollback_host.yml) on the real nginx:
deploy A (the converged release), deploy B (HTTPS on another port), roll back: nginx serves A
again, checked over HTTPS against the release's own expectations; refused without --limit and
on a host without a previous release, changing nothing there. The host ends on A, as
converged, for the tests after this file."""

from __future__ import annotations

import pytest
from conftest import PROV_CONTAINER, Client, in_container
from sipwave_testlib.playbooks import run_playbook

ROOT = "/etc/nginx/sipwave"
PHONE_ADDRESS = "127.0.22.202"  # provisioning_ban_ignore: never banned
PORT_B = 8443
COMMON = "/common/y000000000000.cfg"


def release_of(pointer: str) -> str:
    found = in_container(PROV_CONTAINER, "readlink", f"{ROOT}/{pointer}")
    assert found.returncode == 0, found.stderr
    return found.stdout.strip().rsplit("/", 1)[-1]


def status_on(port: int, tls_context) -> int | None:
    """The HTTPS status of a common file on ``port``; None when nothing answers there."""
    client = Client(PHONE_ADDRESS, tls_context, port=port)
    try:
        return client.get(COMMON)[0]
    except AssertionError:
        return None
    finally:
        client.close()


def rollback(*options: str):
    return run_playbook("rollback_host.yml", options=options)


@pytest.fixture(scope="module")
def deployed_twice(tls_context):
    release_a = release_of("current")
    assert status_on(443, tls_context) == 200
    run = run_playbook("provisioning.yml", {"provisioning_https_port": PORT_B})
    assert run.returncode == 0, run.stdout[-3000:]
    release_b = release_of("current")
    assert release_b != release_a and release_of("previous") == release_a
    assert status_on(PORT_B, tls_context) == 200 and status_on(443, tls_context) is None
    return release_a, release_b


def test_a_rollback_without_limit_is_refused_and_changes_nothing(deployed_twice):
    _a, release_b = deployed_twice
    run = rollback()
    assert run.returncode != 0
    assert "Name the hosts to roll back with --limit" in run.stdout
    assert release_of("current") == release_b


def test_a_server_without_a_previous_release_is_refused_and_keeps_serving(
    deployed_twice, tls_context
):
    _a, release_b = deployed_twice
    in_container(PROV_CONTAINER, "mv", f"{ROOT}/previous", f"{ROOT}/previous.hidden")
    try:
        run = rollback("--limit", PROV_CONTAINER)
    finally:
        in_container(PROV_CONTAINER, "mv", f"{ROOT}/previous.hidden", f"{ROOT}/previous")
    assert run.returncode != 0
    assert "has no previous release to roll back to" in run.stdout
    assert release_of("current") == release_b
    assert status_on(PORT_B, tls_context) == 200


def test_rollback_serves_the_previous_release_and_proves_it(deployed_twice, tls_context):
    release_a, release_b = deployed_twice
    run = rollback("--limit", PROV_CONTAINER)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "Check that nginx answers over HTTPS as the current release configures" in run.stdout
    assert release_of("current") == release_a and release_of("previous") == release_b
    assert status_on(443, tls_context) == 200
    assert status_on(PORT_B, tls_context) is None
    # nginx reads its configuration through the release link.
    assert in_container(PROV_CONTAINER, "test", "-L", "/etc/nginx/nginx.conf").returncode == 0
