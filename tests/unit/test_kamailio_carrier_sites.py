"""Carriers per site as the kamailio role renders and checks them, by a real ansible-playbook.

One run (connection local) runs the role's preflight once per inventory host, one bad
configuration per host, and renders dispatcher.list and settings.json from the role's own
templates and variables for the good one. The router then reads the rendered settings.json:
for every call, the set it asks dispatcher for must hold, in dispatcher.list, the carriers
that the caller's site and the called prefix call for.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
ROLE = PROJECT / "roles" / "kamailio"
SITES = [{"name": "warsaw", "areas": ["+4822"]}, {"name": "gdansk", "areas": ["+4858", "+4859"]}]
CARRIERS = [
    {"name": "national-a", "address": "127.0.20.31", "prefixes": ["+4822"], "priority": 10},
    {"name": "national-b", "address": "127.0.20.32", "prefixes": ["+4822", "+4861"],
     "priority": 5},
    {"name": "gdansk-local", "address": "127.0.20.33", "prefixes": ["+4822", "+48"],
     "priority": 10, "sites": ["gdansk"]},
]  # fmt: skip
GOOD = {"kamailio_sites": SITES, "kamailio_carriers": CARRIERS}
# host: (variables, what the failure message must name; None when the preflight passes)
PREFLIGHT_CASES = {
    "good": (GOOD, None),
    "no-sites-at-all": ({"kamailio_carriers": CARRIERS[:2]}, None),
    "unknown-site": (
        {**GOOD, "kamailio_carriers": [{**CARRIERS[2], "sites": ["gdansk", "krakow"]}]},
        "kamailio_carriers entry 0 (gdansk-local)",
    ),
    "empty-sites": (
        {**GOOD, "kamailio_carriers": [{**CARRIERS[2], "sites": []}]},
        "kamailio_carriers entry 0 (gdansk-local)",
    ),
    "duplicate-carrier-name": (
        {**GOOD, "kamailio_carriers": [CARRIERS[0], {**CARRIERS[1], "name": "national-a"}]},
        "kamailio_carriers entry 0 (national-a)",
    ),
    "duplicate-site-name": (
        {**GOOD, "kamailio_sites": [*SITES, {"name": "warsaw", "areas": ["+4812"]}]},
        "kamailio_sites entry 0",
    ),
    "area-not-e164": (
        {**GOOD, "kamailio_sites": [SITES[0], {"name": "gdansk", "areas": ["058"]}]},
        "kamailio_sites entry 1",
    ),
    "area-of-two-sites": (
        {**GOOD, "kamailio_sites": [*SITES, {"name": "sopot", "areas": ["+4858"]}]},
        "kamailio_sites entry 1",
    ),
    "site-without-areas": (
        {**GOOD, "kamailio_sites": [*SITES, {"name": "sopot"}]},
        "kamailio_sites entry 2",
    ),
    # The call records' site column holds 64 characters.
    "site-name-too-long": (
        {**GOOD, "kamailio_sites": [*SITES, {"name": "s" * 65, "areas": ["+4812"]}]},
        "kamailio_sites entry 2",
    ),
}
PLAYBOOK = """\
- name: The kamailio role's preflight, then its carriers' files where a host asks for them
  hosts: all
  gather_facts: false
  tasks:
    - name: Check the role's inputs
      ansible.builtin.include_role:
        name: kamailio
        tasks_from: preflight
        public: true
    - name: Render dispatcher.list and settings.json
      ansible.builtin.template:
        src: "{{ templates }}/{{ item }}.j2"
        dest: "{{ output_dir }}/{{ item }}"
        mode: "0644"
      loop: [dispatcher.list, settings.json]
      when: output_dir is defined
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, str]:
    workdir = tmp_path_factory.mktemp("carrier-sites")
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    base = {**local, "kamailio_domains": ["ip.tanifon.pl"]}
    hosts = {host: {**base, **case} for host, (case, _) in PREFLIGHT_CASES.items()}
    hosts["good"].update(output_dir=str(workdir), templates=str(ROLE / "templates/etc/kamailio"))
    (workdir / "inventory.yml").write_text(json.dumps({"all": {"hosts": hosts}}))
    (workdir / "playbook.yml").write_text(PLAYBOOK)
    completed = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", "inventory.yml",
         "playbook.yml"],
        cwd=workdir, capture_output=True, text=True, check=False,
        env={"PATH": "/usr/bin:/bin", "ANSIBLE_NOCOLOR": "1", "HOME": str(workdir),
             "ANSIBLE_ROLES_PATH": str(PROJECT / "roles"),
             "ANSIBLE_COLLECTIONS_PATH": str(PROJECT / "collections"),
             "ANSIBLE_LOCAL_TEMP": str(workdir / "tmp")},
    )  # fmt: skip
    output = completed.stdout + completed.stderr
    assert "PLAY RECAP" in output, output[-3000:]
    assert (workdir / "settings.json").exists(), output[-3000:]
    return workdir, output


def failure_of(output: str, host: str) -> str | None:
    """The failure message of ``host``'s failed task (None when its play succeeded)."""
    recap = re.search(rf"^{re.escape(host)}\s*:.*\bfailed=(\d+)", output, re.M)
    assert recap, output[-3000:]
    if recap.group(1) == "0":
        return None
    found = re.search(rf"^failed: \[{re.escape(host)}\].*?\"msg\": \"(.*?)\"", output, re.M | re.S)
    assert found, output[-3000:]
    return " ".join(found.group(1).split())


@pytest.mark.parametrize("host", PREFLIGHT_CASES)
def test_the_preflight_names_the_entry_that_is_wrong(run, host):
    _, output = run
    expected = PREFLIGHT_CASES[host][1]
    message = failure_of(output, host)
    if expected is None:
        assert message is None, message
    else:
        assert message is not None and expected in message, message


def dispatcher_sets(path: Path) -> dict[int, list[str]]:
    """Set id -> carrier names in the order dispatcher's priority algorithm tries them (higher
    priority first; at equal priority, dispatcher.list's order)."""
    entries: dict[int, list[tuple[int, str]]] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            setid, _uri, _flags, priority, attributes = line.split()
            name = re.search(r"carrier=(\S+)", attributes)[1]
            entries.setdefault(int(setid), []).append((int(priority), name))
    return {
        setid: [name for _, name in sorted(listed, key=lambda entry: -entry[0])]
        for setid, listed in entries.items()
    }


@pytest.mark.parametrize(
    ("caller", "called", "carriers"),
    [
        # Gdansk's own carrier first, then the carriers of every site for +4822.
        ("+48581110001", "+48225550100", ["gdansk-local", "national-a", "national-b"]),
        ("+48591110001", "+48615550100", ["national-b"]),
        # No carrier of every site serves +48 or a shorter prefix: no fallback.
        ("+48591110001", "+48125550100", ["gdansk-local"]),
        ("+48221110001", "+48225550100", ["national-a", "national-b"]),
        ("+48611110001", "+48615550100", ["national-b"]),
        ("+48221110001", "+48125550100", None),
    ],
)
def test_the_router_and_dispatcher_list_agree_on_every_set(ksr, run, caller, called, carriers):
    from sipwave_router.settings import load_settings

    workdir, _ = run
    settings = load_settings(workdir / "settings.json")
    setid = settings.carrier_set_for(called, settings.site_of(caller))
    chosen = None if setid is None else dispatcher_sets(workdir / "dispatcher.list")[setid]
    assert chosen == carriers


def test_each_carrier_appears_once_per_set_it_serves(run):
    workdir, _ = run
    sets = dispatcher_sets(workdir / "dispatcher.list")
    assert sorted(sets.values()) == [
        ["gdansk-local"], ["gdansk-local", "national-a", "national-b"],
        ["national-a", "national-b"], ["national-b"],
    ]  # fmt: skip
