"""Host rollback (playbooks/rollback_host.yml) on the real proxy: deploy A (the converged
release), deploy B, roll back: the host runs A again and serves; refused without --limit and
on a host without a previous release, changing nothing there."""

import re
import secrets

import pytest
from conftest import CONTAINER, LEGACY_DOMAIN, PROXY, main_pid, register_row, run_playbook
from sipwave_testlib import sipp
from sipwave_testlib.dialogs import DIALOG_TOKEN
from sipwave_testlib.playbooks import run_playbook as run_named_playbook
from test_attacks import LEGACY_ONLY_LOGIN, LEGACY_PLATFORM, PROXY_ADDRESS, PROXY_PORT, phone, reply

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


# A caller of the legacy domain not migrated here: the proxy relays its call, record-routed,
# to the legacy platform (played by a socket), unauthenticated (test_attacks.py).
CALLER = "127.0.20.113"
CALLED_URI = f"sip:481299002@{LEGACY_DOMAIN}"


@pytest.fixture(scope="module")
def dialog_before_restarts() -> tuple[str, str]:
    """A dialog's Call-ID and the proxy's Record-Route for it, from before the restarts
    below: a legacy caller's call, relayed to the legacy platform, which answers 486."""
    with phone(*LEGACY_PLATFORM) as legacy, phone(CALLER) as caller:
        invite = caller.request(
            "INVITE", CALLED_URI, from_uri=f"sip:{LEGACY_ONLY_LOGIN}@{LEGACY_DOMAIN}",
            to_uri=CALLED_URI, headers=(f"Contact: <sip:caller@{caller.address}:{caller.port}>",),
        )  # fmt: skip
        caller.send(invite)
        arrived = legacy.answer(3, skip_provisional=False)
        assert arrived is not None and arrived.startswith(b"INVITE "), arrived
        legacy.sock.sendto(reply(arrived, b"486 Busy Here"), (PROXY_ADDRESS, PROXY_PORT))
        caller.answer(3)
    route = re.search(rb"^Record-Route: (<[^>]+>)", arrived, re.M)[1].decode()
    return caller.call_id, route


def in_dialog_from_the_caller(call_id: str, route: str) -> bytes | None:
    """An in-dialog MESSAGE of the caller (no peer) to the legacy platform: what reached it."""
    with phone(*LEGACY_PLATFORM) as legacy, phone(CALLER) as caller:
        caller.call_id = call_id
        caller.send(
            caller.request(
                "MESSAGE",
                f"sip:481299002@{LEGACY_PLATFORM[0]}:{LEGACY_PLATFORM[1]}",
                from_uri=f"sip:{LEGACY_ONLY_LOGIN}@{LEGACY_DOMAIN}",
                to_uri=CALLED_URI,
                to_tag=secrets.token_hex(4),
                headers=(f"Route: {route}",),
            )
        )
        reached = legacy.answer(1, skip_provisional=False)
        if reached is not None:  # answered, so that the proxy stops retransmitting it
            legacy.sock.sendto(reply(reached, b"200 OK"), (PROXY_ADDRESS, PROXY_PORT))
        return reached


@pytest.fixture(scope="module")
def deployed_twice(host, dialog_before_restarts):
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


def test_a_dialog_from_before_the_restarts_is_still_followed(
    deployed_twice, dialog_before_restarts
):
    """The dialog token's key is on the host, not in the release: a call set up before a
    restart (two here: release B, rollback to A) keeps its in-dialog requests; the same Route
    with another Call-ID is refused."""
    call_id, route = dialog_before_restarts
    assert re.fullmatch(r"<sip:127\.0\.20\.11;lr;" + DIALOG_TOKEN + ">", route), route
    reached = in_dialog_from_the_caller(call_id, route)
    assert reached is not None and reached.startswith(b"MESSAGE "), reached
    assert in_dialog_from_the_caller(f"other-{call_id}", route) is None
