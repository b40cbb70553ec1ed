#!/usr/bin/python
# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: kamailio_backup
short_description: Take a consistent copy of the proxy database
version_added: 0.5.0
description:
  - Copies the proxy database into O(directory) on the host under a time-stamped name.
    SQLite uses its online backup, a consistent copy while Kamailio keeps writing.
    PostgreSQL uses C(pg_dump) in custom format, which is needed on the host.
  - The copy is written under a temporary name and renamed when complete, mode 0600. It
    holds HA1 hashes and must be kept like the database.
  - Keeps the newest O(keep) copies in O(directory) and removes older ones.
author:
  - sipwave developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - sipwave.platform.kamailio_db
attributes:
  check_mode:
    support: full
    details: Reports the name the copy would get; nothing is written.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  directory:
    description: Where the copies are kept on the host.
    type: path
    default: /var/backups/sipwave
  keep:
    description: How many copies to keep in O(directory).
    type: int
    default: 3
"""

EXAMPLES = r"""
- name: Copy the proxy database
  sipwave.platform.kamailio_backup:
    directory: /var/backups/sipwave
  register: backup
"""

RETURN = r"""
path:
  description: The copy on the host.
  type: str
  returned: always
taken_at:
  description: When the copy was taken (UTC).
  type: str
  returned: always
size:
  description: Bytes.
  type: int
  returned: success
sha256:
  description: Digest of the copy.
  type: str
  returned: success
removed:
  description: Older copies removed.
  type: list
  returned: success
"""

import glob  # noqa: E402
import os  # noqa: E402
import sqlite3  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.backup import (  # noqa: E402
    copy_postgres,
    copy_sqlite,
    sha256_of,
)
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (  # noqa: E402
    DATABASE_REQUIRED_IF,
    database_argument_spec,
)

PREFIX = "sipwave-db-"


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "directory": {"type": "path", "default": "/var/backups/sipwave"},
            "keep": {"type": "int", "default": 3},
            **database_argument_spec(),
        },
        required_if=list(DATABASE_REQUIRED_IF),
        supports_check_mode=True,
    )
    params = module.params
    if params["keep"] < 1:
        module.fail_json(msg="keep must be at least 1")
    taken_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    suffix = "sqlite" if params["backend"] == "sqlite" else "pgdump"
    name = f"{PREFIX}{taken_at.replace(':', '').replace('-', '')}.{suffix}"
    path = os.path.join(params["directory"], name)
    if params["backend"] == "sqlite" and not os.path.exists(params["database"]):
        module.fail_json(msg=f"{params['database']} does not exist: deploy the kamailio role")
    if module.check_mode:
        module.exit_json(changed=True, path=path, taken_at=taken_at)
    os.makedirs(params["directory"], mode=0o700, exist_ok=True)
    partial = path + ".partial"
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(descriptor)
    try:
        if params["backend"] == "sqlite":
            copy_sqlite(params["database"], partial)
        else:
            copy_postgres(module, partial)
        os.chmod(partial, 0o600)
        os.rename(partial, path)
    except (OSError, sqlite3.Error) as exc:
        module.fail_json(msg=f"backup of the proxy database failed: {exc}")
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    copies = sorted(glob.glob(os.path.join(params["directory"], f"{PREFIX}*.{suffix}")))
    removed = copies[: -params["keep"]]
    for old in removed:
        os.unlink(old)
    module.exit_json(
        changed=True,
        path=path,
        taken_at=taken_at,
        size=os.path.getsize(path),
        sha256=sha256_of(path),
        removed=removed,
    )


if __name__ == "__main__":
    main()
