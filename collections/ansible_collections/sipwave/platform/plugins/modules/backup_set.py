#!/usr/bin/python
# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: backup_set
short_description: Take or check a host's backup set (databases, files, checksum manifest)
version_added: 0.9.0
description:
  - O(state=present) takes one set C(sipwave-backup-<time>) in O(directory) with the proxy
    database (SQLite online backup API, or C(pg_dump) in custom format for PostgreSQL)
    as C(db.sqlite) or C(db.pgdump), and a copy of each existing path of O(paths) under
    C(files/) with its absolute path. C(MANIFEST.json), written last, names every file
    with its size and SHA-256. Then only the newest O(keep) sets are kept.
  - O(state=verified) checks the set O(name) against its manifest (a missing, added or
    changed file refuses it) and refuses a set taken before O(cutover_at) unless
    O(allow_older_than_cutover). Nothing is written.
  - Sets hold HA1 hashes: directories are 0700 and files 0600.
author:
  - sipwave developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - sipwave.platform.kamailio_db
attributes:
  check_mode:
    support: full
    details: O(state=present) reports the set's name; nothing is written.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  state:
    description: Take a set, or check one.
    type: str
    choices: [present, verified]
    default: present
  directory:
    description: Where the sets are kept.
    type: path
    default: /var/backups/sipwave
  paths:
    description: Files and directories copied into the set when they exist.
    type: list
    elements: path
    default: []
  keep:
    description: How many sets to keep.
    type: int
    default: 7
  name:
    description: The set to check (O(state=verified)).
    type: str
  cutover_at:
    description: When the last cutover completed (UTC, C(YYYY-MM-DDTHH:MM:SSZ)), if any.
    type: str
  allow_older_than_cutover:
    description: Accept a set taken before O(cutover_at).
    type: bool
    default: false
  host:
    description: The host's name written into the manifest.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Take a backup set
  sipwave.platform.backup_set:
    paths: [/opt/sipwave/releases, /var/lib/sipwave/reports]
    keep: 7
"""

RETURN = r"""
name:
  description: The set's directory name.
  type: str
  returned: always
taken_at:
  description: When the set was taken (UTC).
  type: str
  returned: success
files:
  description: How many files the manifest names.
  type: int
  returned: success
removed:
  description: Sets removed by retention.
  type: list
  returned: when state=present
"""

import calendar  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import sqlite3  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sipwave.platform.plugins.module_utils import backup_set  # noqa: E402
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.backup import (  # noqa: E402
    copy_postgres,
    copy_sqlite,
)
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (  # noqa: E402
    database_argument_spec,
)


def take(module: AnsibleModule) -> None:
    params = module.params
    now = time.time()
    name = backup_set.set_name(now)
    if module.check_mode:
        module.exit_json(changed=True, name=name)
    os.makedirs(params["directory"], mode=0o700, exist_ok=True)
    target = os.path.join(params["directory"], name)
    os.mkdir(target, 0o700)
    try:
        if params["backend"] == "postgres" and params["db_name"]:
            copy_postgres(module, os.path.join(target, "db.pgdump"))
        elif params["database"] and os.path.exists(params["database"]):
            copy_sqlite(params["database"], os.path.join(target, "db.sqlite"))
        for path in params["paths"]:
            inside = os.path.join(target, "files", path.lstrip("/"))
            if os.path.isdir(path):
                shutil.copytree(path, inside, symlinks=False, ignore_dangling_symlinks=True)
            elif os.path.isfile(path):
                os.makedirs(os.path.dirname(inside), mode=0o700, exist_ok=True)
                shutil.copyfile(path, inside)
        manifest = backup_set.write_manifest(target, now, params["host"])
        removed = backup_set.prune(params["directory"], params["keep"])
    except (OSError, sqlite3.Error, backup_set.BackupSetError) as exc:
        shutil.rmtree(target, ignore_errors=True)
        module.fail_json(msg=f"backup set {name} failed: {exc}", name=name)
    module.exit_json(changed=True, name=name, taken_at=manifest["taken_at"],
                     files=len(manifest["files"]), removed=removed)  # fmt: skip


def check(module: AnsibleModule) -> None:
    params = module.params
    name = params["name"] or ""
    try:
        taken_at = backup_set.taken_at_of(name)
        manifest = backup_set.verify(os.path.join(params["directory"], name))
    except backup_set.BackupSetError as exc:
        module.fail_json(msg=f"refused: {exc}", name=name)
    cutover_at = None
    if params["cutover_at"]:
        try:
            cutover_at = calendar.timegm(time.strptime(params["cutover_at"], "%Y-%m-%dT%H:%M:%SZ"))
        except ValueError:
            module.fail_json(msg=f"cutover_at {params['cutover_at']!r} is not YYYY-MM-DDTHH:MM:SSZ")
    reason = backup_set.cutover_refusal(taken_at, cutover_at, params["allow_older_than_cutover"])
    if reason:
        module.fail_json(msg=f"refused: {name}: {reason}", name=name)
    module.exit_json(changed=False, name=name, taken_at=manifest["taken_at"],
                     files=len(manifest["files"]))  # fmt: skip


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "default": "present", "choices": ["present", "verified"]},
            "directory": {"type": "path", "default": "/var/backups/sipwave"},
            "paths": {"type": "list", "elements": "path", "default": []},
            "keep": {"type": "int", "default": 7},
            "name": {"type": "str"},
            "cutover_at": {"type": "str"},
            "allow_older_than_cutover": {"type": "bool", "default": False},
            "host": {"type": "str", "default": ""},
            **database_argument_spec(),
        },
        required_if=[("state", "verified", ("name",))],
        supports_check_mode=True,
    )
    if module.params["keep"] < 1:
        module.fail_json(msg="keep must be at least 1")
    (take if module.params["state"] == "present" else check)(module)


if __name__ == "__main__":
    main()
