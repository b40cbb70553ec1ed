"""Fixtures for the asterisk scenario: addresses, accounts (read from molecule.yml) and calls."""

import json
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from sipwave_testlib import dialin, sipp
from sipwave_testlib.playbooks import run_playbook as run_project_playbook

PROJECT = Path(__file__).resolve().parents[3]
SCENARIO = yaml.safe_load((Path(__file__).resolve().parents[1] / "molecule.yml").read_text())
GROUP_VARS = SCENARIO["provisioner"]["inventory"]["group_vars"]
PROXY_CONTAINER = "sipwave-molecule-asterisk-proxy"
PBX_CONTAINER = "sipwave-molecule-asterisk-pbx"
PROXY = "127.0.21.11:5060"
PBX = "127.0.21.21:5060"
CARRIER = GROUP_VARS["all"]["sipwave_carrier_address"]
DIALIN = GROUP_VARS["all"]["sipwave_dialin_number"]
LEGACY_DOMAIN = "ip.tanifon.pl"
ACCOUNTS = {a["id"]: a for a in GROUP_VARS["pbx"]["asterisk_dialin_accounts"]}
SUBSCRIBERS = {s["username"]: s["password"] for s in GROUP_VARS["proxies"]["kamailio_subscribers"]}
CDR_DATABASE = "/var/log/asterisk/master.db"
DIALIN_DATABASE = "/var/lib/asterisk/sipwave/dialin.sqlite"
# Every SIPp process binds RTP ports: give each one its own range on the shared addresses.
_media_ports = iter(range(22000, 23000, 10))
# SIPp without -p takes 5060 when it is free: callers sharing the carrier's address must not.
_caller_ports = iter(range(5100, 5999))


def in_container(container: str, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", "exec", container, *command], capture_output=True, text=True)


def pbx(*command: str) -> str:
    return in_container(PBX_CONTAINER, *command).stdout


def asterisk_pid() -> int:
    return int(pbx("systemctl", "show", "asterisk", "-p", "MainPID", "--value"))


def forget_failures(*callers: str) -> None:
    """A fresh lockout counter for a test's callers (re-runs against the same containers)."""
    listed = ", ".join(f"'{caller}'" for caller in callers)
    pbx("sqlite3", DIALIN_DATABASE, f"DELETE FROM failure WHERE caller IN ({listed})")


def cdr_rows(where: str) -> list[dict]:
    query = (
        "SELECT account, department, caller, destination, disposition, outcome, dst "
        f"FROM cdr WHERE {where} ORDER BY rowid"
    )
    output = pbx("sqlite3", "-json", CDR_DATABASE, query).strip()
    return json.loads(output) if output else []


def run_playbook(
    *extra_vars: dict, tags: str = "", playbook: str = "asterisk.yml"
) -> subprocess.CompletedProcess:
    """Run a playbook (the asterisk one unless named) against the scenario's inventory.

    Through the shared runner: at -vvvv, with a transcript that test_zz_secrets.py searches.
    """
    options = ["--tags", tags] if tags else []
    return run_project_playbook(playbook, *extra_vars, options=options)


def carrier_answers(timeout_s: float = 150, calls: int = 1):
    """The lab carrier: SIPp answering on 127.0.21.31:5060; wait for it with sipp.wait()."""
    return sipp.run(
        "answer.xml",
        PBX,
        CARRIER,
        local_port=5060,
        calls=calls,
        background=True,
        timeout_s=timeout_s,
        # Calls are held for up to a minute before the BYE the carrier waits for.
        extra=["-mp", str(next(_media_ports)), "-recv_timeout", "90000"],
    )


def dial_in(
    caller: str,
    *,
    source: str = CARRIER,
    subscriber: str | None = None,
    password: str | None = None,
    domain: str = LEGACY_DOMAIN,
    background: bool = False,
    **call_options,
):
    """One dial-in call through the proxy, from the carrier or as an authenticated subscriber
    (an inventory one, or any other given with its password and domain)."""
    credentials = None
    if subscriber:
        credentials = sipp.credentials(subscriber, password or SUBSCRIBERS[subscriber])
    call = dialin.DialinCall(
        caller=subscriber or caller,
        dialin=DIALIN,
        domain=domain,
        credentials=credentials,
        **call_options,
    )
    timeout = 20 + call.hold_ms / 1000 + len(call.entries) * 8
    return sipp.run(
        str(dialin.write(call)),
        PROXY,
        source,
        local_port=next(_caller_ports),
        background=background,
        timeout_s=timeout,
        extra=["-mp", str(next(_media_ports)), "-recv_timeout", "20000"],
    )


class Carrier:
    """The lab carrier for one test: ``answered()`` waits for its call, ``stop()`` does not."""

    def __init__(self) -> None:
        self.process, self.workdir = carrier_answers()

    def answered(self) -> sipp.SippResult:
        return sipp.wait(self.process, self.workdir, timeout_s=160)

    def stop(self) -> sipp.SippResult:
        return sipp.wait(self.process, self.workdir, timeout_s=1)


@pytest.fixture(scope="session", autouse=True)
def subscriber_numbers():
    """The proxy subscribers' own numbers, as the wave engine writes them (dbaliases) and
    loaded into the routing cache: the proxy presents an account's number and refuses a call
    from an account without one (it never makes a number of a login)."""
    database = "/var/lib/kamailio/sipwave.sqlite"
    values = ", ".join(f"('{login}', '{LEGACY_DOMAIN}', '{login}', '{LEGACY_DOMAIN}')"
                       for login in SUBSCRIBERS)  # fmt: skip
    inserted = in_container(
        PROXY_CONTAINER, "sqlite3", database,
        "INSERT OR IGNORE INTO dbaliases (alias_username, alias_domain, username, domain)"
        f" VALUES {values}",
    )  # fmt: skip
    assert inserted.returncode == 0, inserted.stderr
    in_container(PROXY_CONTAINER, "kamcmd", "htable.reload", "routing")
    yield


@pytest.fixture
def carrier():
    started = Carrier()
    yield started
    if started.process.poll() is None:
        started.process.kill()


# Monitoring: the Prometheus server on the proxy host (playbooks/monitoring.yml).
PROMETHEUS = "http://127.0.21.11:9090"
# Straight to the lab address, whatever proxy the environment names.
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def prometheus_query(expression: str) -> list[dict]:
    """The instant vector of a PromQL expression: [{"metric": {...}, "value": [t, "v"]}]."""
    url = f"{PROMETHEUS}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
    with _direct.open(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]["result"]


def wait_for_metric(expression: str, timeout_s: float = 60.0) -> list[dict]:
    """Poll until ``expression`` (a PromQL filter such as ``x > 0``) has a result."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = prometheus_query(expression)
        if result or time.monotonic() > deadline:
            return result
        time.sleep(1)
