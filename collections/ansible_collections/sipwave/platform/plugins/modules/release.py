#!/usr/bin/python
# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: release
short_description: Keep validated, versioned releases of a rendered configuration directory
version_added: 0.1.0
description:
  - Copies a staging directory that a role rendered into O(root)/releases/<id>, where the id is
    derived from the content, and points the symlink O(root)/current at it.
  - The staging directory is validated before anything changes, Python files are compiled, and
    the release that was current before stays reachable through O(root)/previous.
  - Rendering the same content again changes nothing and does not run the validation again.
  - A run interrupted at any point is repaired by the next run.
  - C(__pycache__) directories and C(*.pyc) files are neither part of the release id nor
    copied.
author:
  - sipwave developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Python files are still compiled (in memory); validation commands are not run.
  diff_mode:
    support: full
    details: Lists C(path sha256-prefix) of every file of the old and the new current release.
  platform:
    platforms: posix
options:
  staging:
    description:
      - Directory holding the rendered configuration.
      - Required when O(state=present); ignored for O(state=rollback).
    type: path
  root:
    description:
      - Directory that holds C(releases/), C(current) and C(previous).
      - The service should read its configuration through O(root)/current.
    type: path
    required: true
  state:
    description:
      - V(present) makes the content of O(staging) the current release.
      - V(rollback) swaps O(root)/current and O(root)/previous. It always reports a change, so
        running it twice returns to where it started.
    type: str
    choices: [present, rollback]
    default: present
  validate:
    description:
      - Commands run on the staging directory before it becomes a release, in order.
      - Each command is a list of arguments, run without a shell. Every C({release}) inside an
        argument is replaced by the path of the directory being validated.
      - The first command that exits non-zero fails the task with the last 20 lines of its
        output; nothing is changed then.
    type: list
    elements: list
    default: []
  compile_python:
    description:
      - Compile every C(*.py) file in memory and fail on a syntax error, naming file and line.
      - No byte-code is written.
    type: bool
    default: true
  keep:
    description:
      - Number of releases kept under O(root)/releases. The oldest (by modification time) are
        deleted first; the current and previous releases are never deleted.
    type: int
    default: 3
"""

EXAMPLES = r"""
- name: Render the Kamailio configuration into a staging directory
  ansible.builtin.template:
    src: etc/kamailio/kamailio.cfg.j2
    dest: /var/lib/sipwave/kamailio/staging/kamailio.cfg
    mode: "0640"

- name: Release the configuration once Kamailio accepts it
  sipwave.platform.release:
    staging: /var/lib/sipwave/kamailio/staging
    root: /etc/kamailio/sipwave
    validate:
      - [kamailio, -c, -f, "{release}/kamailio.cfg"]
    keep: 5
  register: kamailio_release
  notify: Reload kamailio

- name: Go back to the configuration that was live before
  sipwave.platform.release:
    root: /etc/kamailio/sipwave
    state: rollback
"""

RETURN = r"""
release:
  description: Id of the release that is (or in check mode would be) current.
  returned: always
  type: str
  sample: 3f9a0c1d2b4e5f60
previous:
  description: Id of the release O(root)/previous points (or would point) at, if any.
  returned: always
  type: str
  sample: 0a1b2c3d4e5f6071
changed_files:
  description:
    - Files added, removed or changed compared with the release that was current before.
    - Every file when there was no current release.
  returned: always
  type: list
  elements: str
  sample: [kamailio.cfg, router/routing.py]
pruned:
  description: Releases deleted (or that would be deleted) to honour O(keep).
  returned: always
  type: list
  elements: str
  sample: [77aa01bc99de0f12]
actions:
  description: Steps taken, or in check mode the steps that would be taken.
  returned: always
  type: list
  elements: str
  sample: ["compile Python files", "install releases/3f9a0c1d2b4e5f60"]
"""

# Ansible wants imports after the documentation (validate-modules: import-before-documentation).
from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sipwave.platform.plugins.module_utils.release import (  # noqa: E402
    ReleaseError,
    present,
    rollback,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "staging": {"type": "path"},
            "root": {"type": "path", "required": True},
            "state": {"type": "str", "default": "present", "choices": ["present", "rollback"]},
            "validate": {"type": "list", "elements": "list", "default": []},
            "compile_python": {"type": "bool", "default": True},
            "keep": {"type": "int", "default": 3},
        },
        required_if=[("state", "present", ("staging",))],
        supports_check_mode=True,
    )
    params = module.params
    try:
        if params["state"] == "rollback":
            outcome = rollback(params["root"], check_mode=module.check_mode)
        else:
            outcome = present(
                params["staging"],
                params["root"],
                validate=params["validate"],
                compile_python=params["compile_python"],
                keep=params["keep"],
                check_mode=module.check_mode,
            )
    except (ReleaseError, OSError) as exc:
        module.fail_json(msg=str(exc))

    result = {
        "changed": outcome.changed,
        "release": outcome.release,
        "previous": outcome.previous,
        "changed_files": outcome.changed_files,
        "pruned": outcome.pruned,
        "actions": outcome.actions,
    }
    if module._diff:
        result["diff"] = outcome.diff(params["root"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
