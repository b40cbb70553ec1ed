"""Torture suite: the project's malformed and hostile SIP messages against the real proxy.

Every case of sipwave_testlib.torture goes to Kamailio from a source address of its own
(raw UDP, a few over TCP). After each one: an OPTIONS keepalive from a separate, clean
source is answered 200, the main process and every worker still have the PIDs they had
before the case (a worker that dies makes Kamailio exit and systemd start a new one), the
journal holds no Python traceback from the router, and the case got no answer it must never
get (a 2xx to anything but an OPTIONS to the proxy itself, so never to an unauthenticated
REGISTER or INVITE; 400 or silence for a method that is not a token).

The suite runs against this scenario's proxy. SIPWAVE_TORTURE_PROXY, SIPWAVE_TORTURE_CONTAINER,
SIPWAVE_TORTURE_DOMAIN and SIPWAVE_TORTURE_USER point it at another lab proxy, e.g.
``SIPWAVE_TORTURE_PROXY=127.0.24.11:5060 SIPWAVE_TORTURE_CONTAINER=sipwave-molecule-pgsql-proxy
SIPWAVE_TORTURE_USER=481240001 pytest molecule/kamailio/tests/test_torture.py`` against the
kamailio-postgres scenario's.
"""

import os
import subprocess
from dataclasses import dataclass, field

import pytest
from conftest import ACCOUNTS, CONTAINER, LEGACY_DOMAIN, PROXY
from sipwave_testlib import torture

# One podman exec per look: MainPID, its children, and the router's journal lines since the
# last look (a cursor, so that each case sees only what it caused).
LOOK = r"""
pid=$(systemctl show -p MainPID --value kamailio)
echo "$pid"
pgrep -P "$pid" | sort -n | tr '\n' ' '
echo
if [ -n "$0" ]; then
  journalctl -u kamailio --no-pager -o cat --show-cursor --after-cursor="$0"
else
  journalctl -u kamailio --no-pager -o cat --show-cursor -n 0
fi
"""
CURSOR_PREFIX = "-- cursor: "
# How app_python3s logs an exception that escaped the router (Python's own heading).
TRACEBACK = "Traceback (most recent call last)"


@dataclass
class Look:
    processes: tuple[int, ...]  # MainPID first, then the workers
    journal: list[str]
    cursor: str

    @property
    def tracebacks(self) -> list[str]:
        """Each traceback in the journal: its frames and the exception line."""
        found = []
        for index, line in enumerate(self.journal):
            if TRACEBACK in line:
                end = index + 1
                while end < len(self.journal) and self.journal[end].startswith(" "):
                    end += 1
                found.append("\n".join(self.journal[index : end + 1]))
        return found


@dataclass
class Lab:
    proxy_host: str
    proxy_port: int
    container: str
    domain: str
    user: str
    keepalive_source: str
    case_sources: dict[str, str]
    cursor: str = ""
    first_cursor: str = ""
    baseline: tuple[int, ...] = ()
    processes: tuple[int, ...] = ()
    every_status: dict[str, list[int]] = field(default_factory=dict)

    def look(self, cursor: str | None = None) -> Look:
        result = subprocess.run(
            ["podman", "exec", self.container, "sh", "-c", LOOK,
             self.cursor if cursor is None else cursor],
            capture_output=True,
            timeout=60,
        )  # fmt: skip
        lines = result.stdout.decode("utf-8", "replace").split("\n")
        assert result.returncode == 0 and lines[0].strip().isdigit(), result.stderr
        main, workers, journal = int(lines[0]), lines[1].split(), lines[2:]
        cursors = [line for line in journal if line.startswith(CURSOR_PREFIX)]
        new_cursor = cursors[-1][len(CURSOR_PREFIX) :] if cursors else self.cursor
        journal = [line for line in journal if line and not line.startswith(CURSOR_PREFIX)]
        return Look((main, *map(int, workers)), journal, new_cursor)

    def target(self, case: torture.Case) -> torture.Target:
        return torture.Target(
            self.proxy_host,
            self.proxy_port,
            domain=self.domain,
            user=self.user,
            source_host=self.case_sources[case.name],
        )


@pytest.fixture(scope="module")
def lab() -> Lab:
    proxy = os.environ.get("SIPWAVE_TORTURE_PROXY", PROXY)
    host, port = proxy.rsplit(":", 1)
    keepalive_source, case_sources = torture.sources(host)
    lab = Lab(
        proxy_host=host,
        proxy_port=int(port),
        container=os.environ.get("SIPWAVE_TORTURE_CONTAINER", CONTAINER),
        domain=os.environ.get("SIPWAVE_TORTURE_DOMAIN", LEGACY_DOMAIN),
        user=os.environ.get("SIPWAVE_TORTURE_USER", ACCOUNTS["legacy-a"][0]),
        keepalive_source=keepalive_source,
        case_sources=case_sources,
    )
    first = lab.look()
    assert len(first.processes) > 1, f"no Kamailio workers in {lab.container}"
    assert torture.keepalive(host, int(port), keepalive_source) == 200, "no keepalive before"
    lab.cursor = lab.first_cursor = first.cursor
    lab.baseline = lab.processes = first.processes
    return lab


@pytest.mark.parametrize("case", torture.CASES, ids=lambda case: case.name)
def test_torture_case_leaves_the_proxy_unharmed(lab, case):
    before = lab.processes
    outcome = torture.send(case, lab.target(case))
    keepalive = torture.keepalive(lab.proxy_host, lab.proxy_port, lab.keepalive_source)
    after = lab.look()
    lab.cursor, lab.processes = after.cursor, after.processes
    lab.every_status[case.name] = outcome.statuses
    what = f"{case.category} case {case.name} ({case.transport}) got {outcome.responses}"
    assert after.tracebacks == [], f"{what}; the router raised:\n" + "\n".join(after.tracebacks)
    assert after.processes == before, f"{what}; processes {before} became {after.processes}"
    assert keepalive == 200, f"{what}; the keepalive after it got {keepalive}"
    assert case.unacceptable(outcome.statuses) == [], f"{what}: never acceptable here"


def test_torture_suite_ran_on_one_kamailio_without_a_traceback(lab):
    # Journal lines that arrived after a case's own look are counted here.
    whole = lab.look(cursor=lab.first_cursor)
    assert whole.tracebacks == [], "\n".join(whole.tracebacks)
    assert whole.processes == lab.baseline
    assert len(lab.every_status) == len(torture.CASES)
