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
  - With O(archive), O(state=present) also writes the set as one tar there (for the
    controller's copy), and O(state=verified) first unpacks that tar into O(directory)
    (only plain files and directories with safe names are accepted).
  - O(state=verified) checks the set O(name) against its manifest (a missing, added or
    changed file refuses it, naming the file) and refuses a set taken before the last
    completed cutover unless O(allow_older_than_cutover). The last cutover is the later of
    O(cutover_at) and the newest C(sipwave_cutover) row of the live database (when it can
    be read).
  - Sets hold HA1 hashes, so directories are 0700 and files 0600.
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
  archive:
    description: A tar of the set, written (O(state=present)) or unpacked first
      (O(state=verified)).
    type: path
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
archive_sha256:
  description: The SHA-256 of O(archive).
  type: str
  returned: when state=present and archive is given
database:
  description: The set's database copy (C(db.sqlite) or C(db.pgdump)), empty without one.
  type: str
  returned: when state=verified
database_sha256:
  description: Its SHA-256 from the manifest.
  type: str
  returned: when state=verified
cutover_at:
  description: The last completed cutover the set was compared with (empty if none).
  type: str
  returned: when state=verified
"""

import calendar  # noqa: E402
import os  # noqa: E402
import sqlite3  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sipwave.platform.plugins.module_utils import backup_set  # noqa: E402
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.backup import (  # noqa: E402
    copy_postgres,
    copy_sqlite,
    sha256_of,
)
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (  # noqa: E402
    DatabaseError,
    connect_with,
    database_argument_spec,
)
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.times import (  # noqa: E402
    epoch_of,
)

STAMP = "%Y-%m-%dT%H:%M:%SZ"


def copier(module: AnsibleModule):
    """Writes the proxy database's copy into a set's directory (nothing without one)."""
    params = module.params

    def copy(target: str) -> None:
        if params["backend"] == "postgres" and params["db_name"]:
            copy_postgres(module, os.path.join(target, "db.pgdump"))
        elif params["database"]:
            copy_sqlite(params["database"], os.path.join(target, "db.sqlite"))

    return copy


def take(module: AnsibleModule) -> None:
    params = module.params
    if module.check_mode:
        module.exit_json(changed=True, name=backup_set.set_name(time.time()))
    try:
        name, manifest, removed = backup_set.take(
            params["directory"], copier(module), params["paths"], params["keep"], params["host"]
        )
        result = {"name": name, "taken_at": manifest["taken_at"], "files": len(manifest["files"]),
                  "removed": removed}  # fmt: skip
        if params["archive"]:
            backup_set.pack(os.path.join(params["directory"], name), params["archive"])
            result["archive_sha256"] = sha256_of(params["archive"])
    except (OSError, sqlite3.Error, backup_set.BackupSetError) as exc:
        module.fail_json(msg=f"backup set failed: {exc}")
    module.exit_json(changed=True, **result)


def live_cutover(params: dict) -> float | None:
    """When the live database's last cutover was recorded; None without a readable one (a
    fresh host, or no database options)."""
    if params["backend"] == "sqlite" and not (params["database"] and
                                              os.path.exists(params["database"])):  # fmt: skip
        return None
    if params["backend"] == "postgres" and not params["db_name"]:
        return None
    try:
        database = connect_with(params)
    except DatabaseError:
        return None
    try:
        cursor = database.connection.cursor()
        cursor.execute("SELECT MAX(at) FROM sipwave_cutover")
        (stamp,) = cursor.fetchone()
        return epoch_of(stamp)
    except database.Error:
        return None
    finally:
        database.close()


def check(module: AnsibleModule) -> None:
    params = module.params
    name = params["name"] or ""
    try:
        taken_at = backup_set.taken_at_of(name)
        if params["archive"] and not module.check_mode:
            backup_set.unpack(params["archive"], params["directory"])
        manifest = backup_set.verify(os.path.join(params["directory"], name))
    except (OSError, backup_set.BackupSetError) as exc:
        module.fail_json(msg=f"refused: {exc}", name=name)
    cutovers = [live_cutover(params)]
    if params["cutover_at"]:
        try:
            cutovers.append(calendar.timegm(time.strptime(params["cutover_at"], STAMP)))
        except ValueError:
            module.fail_json(msg=f"cutover_at {params['cutover_at']!r} is not YYYY-MM-DDTHH:MM:SSZ")
    cutover_at = max((c for c in cutovers if c is not None), default=None)
    reason = backup_set.cutover_refusal(taken_at, cutover_at, params["allow_older_than_cutover"])
    if reason:
        module.fail_json(msg=f"refused: {name}: {reason}", name=name)
    database = backup_set.database_file(manifest) or ""
    module.exit_json(
        changed=False, name=name, taken_at=manifest["taken_at"], files=len(manifest["files"]),
        database=database,
        database_sha256=manifest["files"][database]["sha256"] if database else "",
        cutover_at=time.strftime(STAMP, time.gmtime(cutover_at)) if cutover_at else "",
    )  # fmt: skip


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
            "archive": {"type": "path"},
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
