#!/usr/bin/python
# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: account_states
short_description: Read every account's migration state (no secret) from the wave database
version_added: 0.3.0
description:
  - Reads the C(sipwave_account) table that M(sipwave.platform.wave) keeps (login, state and
    the identity the account registers as), for example for
    M(sipwave.platform.provisioning_configs). Reads only; never changes anything.
  - The states come back as one JSON string so that 100,000 accounts cost one value.
author:
  - sipwave developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - sipwave.platform.kamailio_db
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Read the accounts' states
  sipwave.platform.account_states:
    database: /var/lib/kamailio/sipwave.sqlite
  register: account_states
"""

RETURN = r"""
states:
  description: JSON of [columns, rows]; columns login, state, current_username, current_domain.
  type: str
  returned: always
counts:
  description: Accounts per state.
  type: dict
  returned: always
consented:
  description:
    - Logins whose recorded decision is C(migrate), the customers who consented to the new
      operator (and to it processing their data). Only they get mail from the new operator
      (playbooks/notify_wave.yml).
  type: list
  elements: str
  returned: always
staff:
  description:
    - JSON of the staff members' accounts (playbooks/user_add.yml), a list of login, domain,
      display_name and devices (C(vendor:model:mac)), for M(sipwave.platform.provisioning_configs).
  type: str
  returned: always
decided:
  description:
    - Logins with any recorded decision (C(migrate) or C(close)). The decision reminder
      before a wave's decide_by goes to the wave's other customers only.
  type: list
  elements: str
  returned: always
"""

import json  # noqa: E402
import os  # noqa: E402
from collections import Counter  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (  # noqa: E402
    DATABASE_REQUIRED_IF,
    DatabaseError,
    connect_with,
    database_argument_spec,
)

COLUMNS = ("login", "state", "current_username", "current_domain")


def read_states(conn) -> list[tuple]:
    cursor = conn.connection.cursor()
    try:
        cursor.execute(f"SELECT {', '.join(COLUMNS)} FROM sipwave_account ORDER BY login")
    except conn.Error:
        # No wave has run yet: the engine creates its tables on the first one.
        return []
    return [tuple(row) for row in cursor.fetchall()]


def read_decisions(conn) -> list[tuple[str, str]]:
    cursor = conn.connection.cursor()
    try:
        cursor.execute("SELECT login, decision FROM sipwave_consent ORDER BY 1")
    except conn.Error:
        return []  # no consent recorded yet (the engine creates the table on its first run)
    return [(row[0], row[1]) for row in cursor.fetchall()]


def read_staff(conn) -> list[dict]:
    cursor = conn.connection.cursor()
    try:
        cursor.execute(
            "SELECT login, domain, display_name, devices FROM sipwave_staff ORDER BY login"
        )
    except conn.Error:
        return []  # a database from before staff members (the schema step creates the table)
    return [
        {"login": login, "domain": domain, "display_name": name,
         "devices": [d for d in devices.split(";") if d]}
        for login, domain, name, devices in cursor.fetchall()
    ]  # fmt: skip


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **database_argument_spec(),
        },
        required_if=list(DATABASE_REQUIRED_IF),
        supports_check_mode=True,
    )
    params = module.params
    rows: list[tuple] = []
    decisions: list[tuple[str, str]] = []
    staff: list[dict] = []
    if params["backend"] != "sqlite" or os.path.exists(params["database"]):
        try:
            conn = connect_with(params)
        except DatabaseError as exc:
            module.fail_json(msg=str(exc))
        try:
            rows = read_states(conn)
            conn.connection.rollback()  # PostgreSQL: the failed read must not abort the next
            decisions = read_decisions(conn)
            conn.connection.rollback()
            staff = read_staff(conn)
        finally:
            conn.close()
    counts = Counter(row[1] for row in rows)
    module.exit_json(
        changed=False,
        states=json.dumps([COLUMNS, rows]),
        counts=dict(sorted(counts.items())),
        consented=[login for login, decision in decisions if decision == "migrate"],
        decided=[login for login, _decision in decisions],
        staff=json.dumps(staff),
    )


if __name__ == "__main__":
    main()
