"""The provisioning role's preflight refuses a weak site secret outside the lab inventory.

One real ansible-playbook run (the role's tasks/preflight.yml, connection local, -vvvv) with
one inventory host per case; each case is judged by its own line of the PLAY RECAP, and no
site secret of any case may appear anywhere in the output.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[2]
LAB_SECRET = "lab-site-secret-not-for-production"
LONG_SECRET = "k3Xf9Qm2Lp7Vw4Rt8Zy6Nb1Hc5Jd0Gs2Ua"  # 36 characters
SHORT_SECRET = "Pz4Wq8Rn2Lk6Vm0T"  # 16 characters
TEST_SECRET = "molecule-provisioning-site-secret"  # 33 characters, published

# host: (site secret, sipwave_lab_inventory or None when unset, refused, reason in the message)
CASES = {
    "short-outside-the-lab": (SHORT_SECRET + "x9Yb", None, True, "too short"),
    "31-characters-outside-the-lab": (LONG_SECRET[:31], False, True, "too short"),
    "the-lab-value-outside-the-lab": (LAB_SECRET, None, True, "published value"),
    "a-test-value-outside-the-lab": (TEST_SECRET, None, True, "published value"),
    "32-random-characters-outside-the-lab": (LONG_SECRET[:32], None, False, ""),
    "the-lab-value-in-the-lab": (LAB_SECRET, True, False, ""),
    "short-in-the-lab": (SHORT_SECRET, True, False, ""),
    "too-short-even-in-the-lab": (SHORT_SECRET[:15], True, True, "too short"),
}

PLAYBOOK = """\
- name: The provisioning role's preflight
  hosts: all
  gather_facts: false
  tasks:
    - name: Check the role's inputs
      ansible.builtin.include_role:
        name: provisioning
        tasks_from: preflight
"""


@pytest.fixture(scope="module")
def preflight(tmp_path_factory) -> str:
    workdir = tmp_path_factory.mktemp("preflight")
    hosts = {}
    for host, (secret, lab, _, _) in CASES.items():
        hosts[host] = {"ansible_connection": "local", "sipwave_site_secret": secret,
                       "ansible_python_interpreter": sys.executable}  # fmt: skip
        if lab is not None:
            hosts[host]["sipwave_lab_inventory"] = lab
    (workdir / "inventory.yml").write_text(json.dumps({"all": {"hosts": hosts}}))
    (workdir / "preflight.yml").write_text(PLAYBOOK)
    completed = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", "inventory.yml",
         "preflight.yml", "-vvvv"],
        cwd=workdir, capture_output=True, text=True, check=False,
        env={"PATH": "/usr/bin:/bin", "ANSIBLE_NOCOLOR": "1", "HOME": str(workdir),
             "ANSIBLE_ROLES_PATH": str(PROJECT / "roles"),
             "ANSIBLE_COLLECTIONS_PATH": str(PROJECT / "collections"),
             "ANSIBLE_LOCAL_TEMP": str(workdir / "tmp")},
    )  # fmt: skip
    output = completed.stdout + completed.stderr
    assert "PLAY RECAP" in output, output[-3000:]
    return output


def failure_of(output: str, host: str) -> str | None:
    """The failure message of ``host``'s failed task (None when its play succeeded)."""
    recap = re.search(rf"^{re.escape(host)}\s*:.*\bfailed=(\d+)", output, re.M)
    assert recap, output[-3000:]
    if recap.group(1) == "0":
        return None
    found = re.search(rf"^fatal: \[{re.escape(host)}\]: FAILED! => *\n?(.*?)(?=^\S)", output,
                      re.M | re.S)  # fmt: skip
    assert found, output[-3000:]
    return " ".join(found.group(1).split())


@pytest.mark.parametrize("host", CASES)
def test_a_weak_site_secret_is_refused_outside_the_lab_only(preflight, host):
    _, _, refused, reason = CASES[host]
    message = failure_of(preflight, host)
    if not refused:
        assert message is None, message
        return
    assert message is not None
    assert "sipwave_site_secret" in message
    assert reason in message


def test_no_site_secret_appears_in_the_output(preflight):
    leaked = [host for host, (secret, _, _, _) in CASES.items() if secret in preflight]
    assert not leaked, leaked


def published_site_secrets() -> set[str]:
    """Every site secret the repository's inventories, scenarios and benchmarks set."""
    found = set()
    pattern = re.compile(r"^\s*(?:sipwave_|provisioning_)?site_secret:\s*(\S+)\s*$", re.M)
    for directory in ("inventories", "molecule", "bench"):
        for path in (PROJECT / directory).rglob("*.yml"):
            found.update(v for v in pattern.findall(path.read_text()) if "{{" not in v)
    return found


def test_every_published_site_secret_is_refused_outside_the_lab():
    role_vars = yaml.safe_load((PROJECT / "roles/provisioning/vars/main.yml").read_text())
    refused = set(role_vars["__provisioning_published_site_secrets"])
    published = published_site_secrets()
    assert LAB_SECRET in published
    assert published <= refused, published - refused
