"""Running the project's playbooks against the hosts of the Molecule scenario under test.

The inventory is the one Molecule wrote for the scenario (MOLECULE_INVENTORY_FILE); the
project's ansible.cfg applies whatever the current directory of the test run is.
"""

import json
import os
import subprocess
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]


def playbook_command(
    name: str, *extra_vars: dict, verbosity: int = 0, check: bool = False
) -> list[str]:
    """ansible-playbook for playbooks/<name>, each dict of ``extra_vars`` as one -e."""
    command = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"]]
    command += [str(PROJECT / "playbooks" / name)]
    for extra in extra_vars:
        command += ["-e", json.dumps(extra)]
    if verbosity:
        command.append("-" + "v" * verbosity)
    if check:
        command += ["--check", "--diff"]
    return command


def playbook_env() -> dict:
    return dict(os.environ, ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"))


def run_playbook(
    name: str, *extra_vars: dict, verbosity: int = 0, check: bool = False
) -> subprocess.CompletedProcess:
    """Run playbooks/<name> to its end; its output is captured."""
    command = playbook_command(name, *extra_vars, verbosity=verbosity, check=check)
    return subprocess.run(
        command, capture_output=True, text=True, env=playbook_env(), cwd=PROJECT, check=False
    )
