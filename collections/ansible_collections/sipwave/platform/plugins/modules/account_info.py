#!/usr/bin/python
# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: account_info
short_description: One account as customer care sees it (state, numbers, registrations, history)
version_added: 0.6.0
description:
  - Reads one account from the proxy database, without changing anything. It returns the
    migration state and identity, the numbers and their states, the recorded decision, the
    registered contacts, port requests, the cutover and every change the wave engine
    audited. It never reads a secret.
  - The action plugin of the same name adds, on the controller, the account's row of the
    legacy export (name, e-mail, devices; never the password or HA1) and the mails the
    sent-log holds for it.
author:
  - sipwave developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - sipwave.platform.kamailio_db
attributes:
  check_mode:
    support: full
    details: Reads only.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  login:
    description: The account's legacy login.
    type: str
    required: true
  export:
    description: Controller only. The legacy export, for the account's name, e-mail and devices.
    type: path
  number_plan:
    description: Controller only. Country plan the export is read with.
    type: dict
  sent_log:
    description: Controller only. The notifications' sent-log, for the mails sent to the account.
    type: path
"""

EXAMPLES = r"""
- name: Show an account
  sipwave.platform.account_info:
    login: "481200001"
  register: account
"""

RETURN = r"""
account:
  description:
    - The account (C(state), C(wave), C(identity), C(numbers), C(decision), C(registrations),
      C(port_requests), C(cutover_at), C(history)), and from the controller C(export) and
      C(mails). Null when no wave ever touched the login.
  type: dict
  returned: always
"""

import os  # noqa: E402
import re  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sipwave.platform.plugins.module_utils.account_view import (  # noqa: E402
    account_view,
)
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (  # noqa: E402
    DATABASE_REQUIRED_IF,
    DatabaseError,
    connect_with,
    database_argument_spec,
)

LOGIN = re.compile(r"[A-Za-z0-9._-]{1,64}")


def main() -> None:
    module = AnsibleModule(
        argument_spec={"login": {"type": "str", "required": True}, **database_argument_spec()},
        required_if=list(DATABASE_REQUIRED_IF),
        supports_check_mode=True,
    )
    params = module.params
    if not LOGIN.fullmatch(params["login"]):
        module.fail_json(msg=f"login {params['login']!r} is not a login (letters, digits, ._-)")
    if params["backend"] == "sqlite" and not os.path.exists(params["database"]):
        module.exit_json(changed=False, account=None)
    try:
        conn = connect_with(params)
    except DatabaseError as exc:
        module.fail_json(msg=str(exc))
    try:
        account = account_view(conn, conn.connection.cursor(), params["login"])
        conn.connection.rollback()
    except conn.Error as exc:
        module.fail_json(msg=f"{params['backend']} database error: {exc}")
    finally:
        conn.close()
    module.exit_json(changed=False, account=account)


if __name__ == "__main__":
    main()
