#!/usr/bin/python
# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: dialin_access
short_description: Keep the dial-in authorisation database (callers, PIN hashes) in one batch
version_added: 0.1.0
description:
  - Writes every account of the dial-in service (department, presented number, authorised
    caller numbers, optional PIN, concurrent-call limit) into the SQLite database that the
    PBX reads on every dial-in call, in a single transaction.
  - Numbers in any common notation are normalised to E.164 with the shared normaliser.
  - PINs are stored as salted scrypt hashes only. PINs and hashes never appear in the result,
    the diff, error messages or the target's log, even without C(no_log) on the task.
  - A PIN that still matches its stored hash is left alone, so a second run changes nothing.
  - The table of failed PIN attempts (lockout counter) belongs to the PBX and is never touched.
author:
  - sipwave developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: A missing database file counts as an empty one.
  diff_mode:
    support: full
    details: One line per account; a PIN is shown only as C(set) or C(none).
  platform:
    platforms: posix
options:
  database:
    description: Path of the SQLite database file; created with its tables when missing.
    type: path
    required: true
  number_plan:
    description: How numbers without a country code are read.
    type: dict
    required: true
    suboptions:
      country_code:
        description: The platform's country code.
        type: str
        required: true
      national_lengths:
        description: Lengths of national numbers.
        type: list
        elements: int
        default: [9]
      trunk_prefix:
        description: National trunk prefix, empty when there is none.
        type: str
        default: ""
  accounts:
    description: The accounts of the dial-in service.
    type: list
    elements: dict
    default: []
    suboptions:
      id:
        description: Account id, unique; recorded in the CDRs.
        type: str
        required: true
      department:
        description: Cost centre recorded in the CDRs.
        type: str
        required: true
      number:
        description: Number presented to the called party (CLIP) on calls out.
        type: str
        required: true
      dialin_numbers:
        description: Caller numbers authorised to use the service for this account.
        type: list
        elements: str
        default: []
      pin:
        description: Optional PIN, 4 to 12 digits; only a salted hash is stored.
        type: str
      max_calls:
        description: Concurrent dial-in calls allowed for the account.
        type: int
        default: 1
  exclusive:
    description: Remove accounts that are not listed.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Keep the dial-in accounts
  sipwave.platform.dialin_access:
    database: /var/lib/asterisk/sipwave/dialin.sqlite
    number_plan: {country_code: "48"}
    exclusive: true
    accounts:
      - id: acme
        department: sales
        number: "+48221110001"
        dialin_numbers: ["0048601000001", "601000002"]
        pin: "{{ vault_dialin_pins.acme }}"
        max_calls: 2
"""

RETURN = r"""
added:
  description: Accounts added (or that would be added).
  returned: always
  type: list
  elements: str
  sample: ["acme"]
updated:
  description: Accounts whose data or PIN changed (or would change).
  returned: always
  type: list
  elements: str
  sample: []
removed:
  description: Accounts removed (or that would be removed).
  returned: always
  type: list
  elements: str
  sample: []
counts:
  description: Number of accounts per outcome.
  returned: always
  type: dict
  sample: {"added": 1, "updated": 0, "removed": 0, "unchanged": 3}
"""

# Ansible wants imports after the documentation (validate-modules: import-before-documentation).
import os  # noqa: E402
import sqlite3  # noqa: E402

from ansible_collections.sipwave.platform.plugins.module_utils.dialin_db import (  # noqa: E402
    Account,
    DialinError,
    Plan,
    apply,
    connect,
    desired_from_entries,
    plan,
    read_accounts,
)
from ansible_collections.sipwave.platform.plugins.module_utils.e164 import (  # noqa: E402
    NumberError,
    plan_from_dict,
)
from ansible_collections.sipwave.platform.plugins.module_utils.quiet_module import (  # noqa: E402
    QuietBulkModule,
)


def _diff(current: dict[str, Account], desired: dict[str, Account], todo: Plan) -> dict:
    after = {**current, **{a: desired[a] for a in todo.add + todo.update}}
    for account_id in todo.remove:
        after.pop(account_id)

    def line(account: Account) -> str:
        note = " (PIN changed)" if account.id in todo.pin_changes - set(todo.add) else ""
        return account.summary() + note + "\n"

    return {
        "before": "".join(current[a].summary() + "\n" for a in sorted(current)),
        "after": "".join(line(after[a]) for a in sorted(after)),
    }


def main() -> None:
    module = QuietBulkModule(
        summarised=("accounts",),
        argument_spec={
            "database": {"type": "path", "required": True},
            "number_plan": {
                "type": "dict",
                "required": True,
                "options": {
                    "country_code": {"type": "str", "required": True},
                    "national_lengths": {"type": "list", "elements": "int", "default": [9]},
                    "trunk_prefix": {"type": "str", "default": ""},
                },
            },
            "accounts": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "no_log": False,  # PINs are summarised by QuietBulkModule, see there why
                "options": {
                    "id": {"type": "str", "required": True},
                    "department": {"type": "str", "required": True},
                    "number": {"type": "str", "required": True},
                    "dialin_numbers": {"type": "list", "elements": "str", "default": []},
                    "pin": {"type": "str", "no_log": False},
                    "max_calls": {"type": "int", "default": 1},
                },
            },
            "exclusive": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    params = module.params
    try:
        number_plan = plan_from_dict(params["number_plan"])
        desired = desired_from_entries(params["accounts"], number_plan)
    except (DialinError, NumberError) as exc:
        module.fail_json(msg=str(exc))

    if module.check_mode and not os.path.exists(params["database"]):
        current: dict[str, Account] = {}
        todo = plan(current, desired, params["exclusive"])
    else:
        try:
            connection = connect(params["database"])
        except DialinError as exc:
            module.fail_json(msg=str(exc))
        try:
            current = read_accounts(connection)
            todo = plan(current, desired, params["exclusive"])
            if todo.changed and not module.check_mode:
                apply(connection, todo, current, desired)
        except sqlite3.Error as exc:
            module.fail_json(msg=f"dial-in database {params['database']}: {exc}")
        finally:
            connection.close()

    result = {
        "changed": todo.changed,
        "added": todo.add,
        "updated": todo.update,
        "removed": todo.remove,
        "counts": {
            "added": len(todo.add),
            "updated": len(todo.update),
            "removed": len(todo.remove),
            "unchanged": len(desired) - len(todo.add) - len(todo.update),
        },
    }
    if module._diff:
        result["diff"] = _diff(current, desired, todo)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
