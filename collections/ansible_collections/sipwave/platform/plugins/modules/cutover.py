#!/usr/bin/python
# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: cutover
short_description: Check and record the point of no return of ported accounts
version_added: 0.5.0
description:
  - With O(operation=check), on a proxy, lists what stops each account of O(logins) from
    being cut over. An account is blocked when it is not served here or one of its numbers
    is not C(active) (ported). Every account is blocked when the proxy's newest backup
    (O(backup_at)) is missing or older than O(backup_max_age_hours).
  - It also lists the accounts with no phone registered here with their current identity
    since their current phase began. The playbook blocks only those that are listed on
    every proxy, because a phone registers with one proxy.
  - With O(operation=record), on a proxy, marks the accounts as cut over, with one audit row
    each. From then on C(sipwave.platform.wave) refuses to roll them back unless it is given
    a reason.
  - With O(operation=retire_legacy), on the lab's legacy platform, removes the accounts'
    subscriber and alias rows so that it no longer knows them.
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
options:
  operation:
    description: What to do.
    type: str
    choices: [check, record, retire_legacy]
    required: true
  logins:
    description: The accounts (legacy logins).
    type: list
    elements: str
    required: true
  backup_at:
    description: For O(operation=check), when this proxy's newest backup was taken (UTC,
      C(YYYY-MM-DDTHH:MM:SSZ)); empty when there is none.
    type: str
    default: ""
  backup_max_age_hours:
    description: How old the newest backup may be.
    type: float
    default: 24
  domain:
    description: For O(operation=retire_legacy), the legacy SIP domain.
    type: str
  wave:
    description: For O(operation=record), the wave named in the audit rows.
    type: str
    default: ""
  actor:
    description: Who cuts over, for the audit rows.
    type: str
    default: sipwave
  run_id:
    description: The run's identifier in the audit rows.
    type: str
    default: manual
"""

EXAMPLES = r"""
- name: What stops these accounts from being cut over
  sipwave.platform.cutover:
    operation: check
    logins: ["481200004"]
    backup_at: "2026-12-04T10:00:00Z"
"""

RETURN = r"""
blockers:
  description: login -> what stops it (O(operation=check)); empty when nothing does.
  type: dict
  returned: when operation is check
unregistered:
  description: login -> why, for accounts with no phone registered here since their current
    phase began (O(operation=check)).
  type: dict
  returned: when operation is check
general:
  description: What stops every account (the backup), O(operation=check).
  type: list
  returned: when operation is check
already:
  description: login -> when, for accounts cut over before (O(operation=check)).
  type: dict
  returned: when operation is check
recorded:
  description: Accounts this run marked as cut over.
  type: list
  returned: when operation is record
removed:
  description: Accounts removed from the legacy platform.
  type: list
  returned: when operation is retire_legacy
"""


from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (  # noqa: E402
    DATABASE_REQUIRED_IF,
    connect_for,
    database_argument_spec,
)
from ansible_collections.sipwave.platform.plugins.module_utils.porting import cutover  # noqa: E402


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "operation": {
                "type": "str",
                "required": True,
                "choices": ["check", "record", "retire_legacy"],
            },
            "logins": {"type": "list", "elements": "str", "required": True},
            "backup_at": {"type": "str", "default": ""},
            "backup_max_age_hours": {"type": "float", "default": 24},
            "domain": {"type": "str"},
            "wave": {"type": "str", "default": ""},
            "actor": {"type": "str", "default": "sipwave"},
            "run_id": {"type": "str", "default": "manual"},
            **database_argument_spec(),
        },
        required_if=[*DATABASE_REQUIRED_IF, ("operation", "retire_legacy", ("domain",))],
        supports_check_mode=True,
    )
    params = module.params
    conn = connect_for(module)
    logins = list(dict.fromkeys(params["logins"]))
    try:
        if params["operation"] == "check":
            found = cutover.blockers(
                conn, logins, backup_at=params["backup_at"] or None,
                backup_max_age_hours=params["backup_max_age_hours"],
            )  # fmt: skip
            result = {
                "changed": False,
                "blockers": found["accounts"],
                "unregistered": found["unregistered"],
                "general": found["general"],
                "already": found["already"],
            }
        elif params["operation"] == "record":
            recorded = cutover.record(
                conn, logins, run_id=params["run_id"], actor=params["actor"],
                wave=params["wave"], check_mode=module.check_mode,
            )  # fmt: skip
            result = {"changed": bool(recorded), "recorded": recorded}
        else:
            removed = cutover.retire_legacy(conn, logins, params["domain"], module.check_mode)
            result = {"changed": bool(removed), "removed": removed}
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    except conn.Error as exc:
        module.fail_json(msg=f"{params['backend']} database error: {exc}")
    finally:
        conn.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
