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
  - Every account carries a O(source), C(inventory) or C(wave:<name>). A run manages only the
    accounts of its source; O(exclusive) removes only that source's unlisted accounts. A
    caller number or account id that another source already holds is never taken over; it
    is a conflict (see O(on_conflict)).
  - A database written before sources existed is upgraded in place (its accounts become
    C(inventory)); nothing in it is lost and the next run changes nothing.
  - After the run the module reads the database back and returns how many of the listed
    accounts and caller numbers are present (O(source) rows in total, too).
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
      screened_number:
        description:
          - The number presented instead of O(accounts[].number) when O(clip_no_screening) is
            false, that is the account's temporary number while its own numbers are still at
            the old operator (the wave playbooks set it).
        type: str
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
      allowed_prefixes:
        description:
          - Destination prefixes in E.164 (C(+44), C(+4930)) the account may call. Without a
            PIN they are all it may call (caller numbers can be forged from the PSTN); unset,
            the PBX's site default applies (national numbers only). A prefix at least as
            long as a blocked one lifts that block for this account, PIN or not.
        type: list
        elements: str
      daily_minutes:
        description:
          - Minutes of dial-in calls per day; a call is cut when they are used up. Unset,
            the PBX's site default caps accounts without a PIN and leaves PIN accounts
            uncapped.
        type: int
  exclusive:
    description: Remove the accounts of O(source) that are not listed.
    type: bool
    default: false
  clip_no_screening:
    description:
      - Whether the PBX's carrier lets calls present numbers it does not hold (CLIP no
        screening). When false, an account with O(accounts[].screened_number) presents that
        number (its temporary number) instead of O(accounts[].number), which the carrier
        does not hold yet.
    type: bool
    default: true
  source:
    description:
      - Where the listed accounts come from. C(inventory) for the inventory's list,
        C(wave:<name>) for the live accounts of a migration wave, C(staff:<login>) for a staff
        member's account (playbooks/user_add.yml).
    type: str
    default: inventory
  keep_accounts:
    description:
      - Account ids of O(source) that O(exclusive) leaves as they are although they are not
        listed (a wave keeps serving an account whose export row has turned bad).
    type: list
    elements: str
    default: []
  on_conflict:
    description:
      - What to do when a listed caller number or account id belongs to another source.
      - C(fail) writes nothing and names every conflict.
      - C(keep) leaves the other source's rows as they are, applies everything else, and
        returns the conflicts (and a warning for each).
    type: str
    choices: [fail, keep]
    default: fail
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

- name: The live accounts of wave1 (playbooks/wave_dialin.yml computes them)
  sipwave.platform.dialin_access:
    database: /var/lib/asterisk/sipwave/dialin.sqlite
    number_plan: {country_code: "48"}
    source: wave:wave1
    exclusive: true
    on_conflict: keep
    accounts:
      - {id: "481200000", department: sales, number: "+48220000000",
         dialin_numbers: ["+48600000000"]}
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
  sample: {"added": 1, "updated": 0, "removed": 0, "unchanged": 3, "conflicting": 0}
conflicts:
  description:
    - Listed caller numbers (C(number)) or account ids (C(number) null) held by an account
      (C(held_by)) of another source (C(held_by_source)); they were not taken over.
  returned: always
  type: list
  elements: dict
  sample: [{"account": "481200000", "number": "+48600000000", "held_by": "acme",
            "held_by_source": "inventory"}]
present:
  description:
    - How many of the listed accounts and caller numbers the database holds for them after
      the run (read back from the database; in check mode, as planned).
  returned: always
  type: dict
  sample: {"accounts": 3, "numbers": 4}
source_rows:
  description: Accounts and caller numbers of O(source) in the database after the run.
  returned: always
  type: dict
  sample: {"accounts": 3, "numbers": 4}
schema_upgraded:
  description: Whether the database was (or would be) upgraded to the current schema.
  returned: always
  type: bool
without_pin:
  description:
    - Every account in the database (all sources) that has no PIN after the run; anyone who
      forges one of its caller numbers can call out on it.
  returned: always
  type: list
  elements: str
  sample: ["481200000", "beta"]
"""

# Ansible wants imports after the documentation (validate-modules: import-before-documentation).
import os  # noqa: E402
import sqlite3  # noqa: E402

from ansible_collections.sipwave.platform.plugins.module_utils.dialin_db import (  # noqa: E402
    Account,
    Conflict,
    DialinError,
    Plan,
    apply,
    check_source,
    connect,
    lock_for_writing,
    needs_upgrade,
    plan,
    read_accounts,
    upgrade,
    without_conflicts,
)
from ansible_collections.sipwave.platform.plugins.module_utils.dialin_entries import (  # noqa: E402
    desired_from_entries,
    diff,
    plan_result,
    presence,
)
from ansible_collections.sipwave.platform.plugins.module_utils.e164 import (  # noqa: E402
    NumberError,
    plan_from_dict,
)
from ansible_collections.sipwave.platform.plugins.module_utils.quiet_module import (  # noqa: E402
    QuietBulkModule,
)

MAX_WARNED_CONFLICTS = 20


def _conflict_message(conflicts: list[Conflict]) -> str:
    return f"{len(conflicts)} conflict(s) with other sources, nothing written: " + "; ".join(
        str(c) for c in conflicts
    )


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
                    "screened_number": {"type": "str"},
                    "dialin_numbers": {"type": "list", "elements": "str", "default": []},
                    "pin": {"type": "str", "no_log": False},
                    "max_calls": {"type": "int", "default": 1},
                    "allowed_prefixes": {"type": "list", "elements": "str"},
                    "daily_minutes": {"type": "int"},
                },
            },
            "exclusive": {"type": "bool", "default": False},
            "clip_no_screening": {"type": "bool", "default": True},
            "source": {"type": "str", "default": "inventory"},
            "keep_accounts": {"type": "list", "elements": "str", "default": []},
            "on_conflict": {"type": "str", "default": "fail", "choices": ["fail", "keep"]},
        },
        supports_check_mode=True,
    )
    params = module.params
    try:
        source = check_source(params["source"])
        number_plan = plan_from_dict(params["number_plan"])
        desired = desired_from_entries(
            params["accounts"], number_plan, source, params["clip_no_screening"]
        )
    except (DialinError, NumberError) as exc:
        module.fail_json(msg=str(exc))
    keep = set(params["keep_accounts"])

    def planned(current: dict[str, Account]) -> tuple[dict[str, Account], list[Conflict], Plan]:
        accepted, conflicts = without_conflicts(current, desired, source)
        if conflicts and params["on_conflict"] == "fail":
            raise DialinError(_conflict_message(conflicts))
        return accepted, conflicts, plan(current, accepted, params["exclusive"], source, keep)

    upgraded = False
    try:
        if module.check_mode and not os.path.exists(params["database"]):
            current: dict[str, Account] = {}
            accepted, conflicts, todo = planned(current)
            after = plan_result(current, accepted, todo)
        else:
            connection = connect(params["database"])
            try:
                if not module.check_mode:
                    lock_for_writing(connection)
                upgraded = needs_upgrade(connection)
                current = read_accounts(connection)
                accepted, conflicts, todo = planned(current)
                if module.check_mode:
                    after = plan_result(current, accepted, todo)
                else:
                    upgrade(connection)
                    if todo.changed:
                        apply(connection, todo, current, accepted)
                    connection.commit()
                    after = read_accounts(connection)
            except BaseException:
                connection.rollback()
                raise
            finally:
                connection.close()
    except DialinError as exc:
        module.fail_json(msg=str(exc))
    except sqlite3.Error as exc:
        module.fail_json(msg=f"dial-in database {params['database']}: {exc}")

    for conflict in conflicts[:MAX_WARNED_CONFLICTS]:
        module.warn(f"dial-in conflict, left as it is: {conflict}")
    if len(conflicts) > MAX_WARNED_CONFLICTS:
        module.warn(f"... and {len(conflicts) - MAX_WARNED_CONFLICTS} more dial-in conflicts")
    result = {
        "changed": todo.changed or upgraded,
        "added": todo.add,
        "updated": todo.update,
        "removed": todo.remove,
        "counts": {
            "added": len(todo.add),
            "updated": len(todo.update),
            "removed": len(todo.remove),
            "unchanged": len(accepted) - len(todo.add) - len(todo.update),
            "conflicting": len({c.account for c in conflicts}),
        },
        "conflicts": [c.as_dict() for c in conflicts],
        "schema_upgraded": upgraded,
        "without_pin": sorted(a.id for a in after.values() if not a.has_pin),
        **presence(desired, after, source),
    }
    if module._diff:
        result["diff"] = diff(current, plan_result(current, accepted, todo), todo, source)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
