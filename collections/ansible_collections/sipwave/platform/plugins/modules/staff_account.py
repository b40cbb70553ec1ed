#!/usr/bin/python
# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: staff_account
short_description: Add or update a staff member's SIP account, number and phones in one transaction
version_added: 0.4.0
description:
  - Writes a staff member's account into the proxy database in one transaction - the
    subscriber row (HA1 and HA1b only), a number from the staff number inventory with its
    alias, the authorised dial-in caller numbers, the C(sipwave_staff) row (name, e-mail,
    department, phones) and an audit row - and counts the routing generation up, so that
    the C(kamailio) role's C(reload_routing) reloads the routing cache.
  - The number is O(number) when given (it must be in O(number_inventory) and free), else
    the number the member already has, else the lowest free number of the inventory. Free
    is what no account holds, no alias routes and no quarantine keeps.
  - A login of a customer account (migrated, or its phase-2 identity), a login starting
    with O(login_prefix), an identity that is already a SIP account, a MAC of another staff
    member's phone and a dial-in number of another account are refused, naming the value.
  - The action plugin of the same name runs on the controller first. It checks the input,
    refuses a login or a MAC that the legacy export gives a customer, and derives the SIP
    password from the site secret (C(staff_password)); only its HA1 and HA1b reach the host.
  - A second run with the same input changes nothing.
author:
  - sipwave developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - sipwave.platform.kamailio_db
attributes:
  check_mode:
    support: full
    details: Plans everything and writes nothing; the number shown is the one a run would take.
  diff_mode:
    support: full
    details: The member's view before and after (identity, number, phones...); never a secret.
  platform:
    platforms: posix
options:
  login:
    description: The staff member's SIP login (letters, digits, '.', '_', '-').
    type: str
    required: true
  domain:
    description: The SIP domain of the account (C(sipwave_new_domain)).
    type: str
    required: true
  display_name:
    description: Name shown on the phone and in the mail.
    type: str
    default: ""
  email:
    description: Where the settings mail goes.
    type: str
    default: ""
  department:
    description: Cost centre of the account's calls.
    type: str
    default: ""
  devices:
    description: The member's phones, each C(vendor:model:mac).
    type: list
    elements: str
    default: []
  number:
    description: The number to give (any common notation); default the lowest free one.
    type: str
  dialin_numbers:
    description: Caller numbers authorised to use the dial-in service as this member.
    type: list
    elements: str
    default: []
  number_plan:
    description: How numbers without a country code are read (as for M(sipwave.platform.wave)).
    type: dict
    required: true
  number_inventory:
    description: The staff number ranges, each C(area), C(first), C(last) in E.164.
    type: list
    elements: dict
    required: true
  login_prefix:
    description: The prefix of the customers' phase-2 logins; staff logins may not start with it.
    type: str
    default: ""
  today:
    description: The day of the run (YYYY-MM-DD), for the quarantine of returned numbers.
    type: str
  run_id:
    description: The run's id in the audit log.
    type: str
  site_secret:
    description: Controller only (action plugin). The secret the SIP password derives from.
    type: str
  export:
    description: Controller only (action plugin). The legacy export, to refuse its logins and MACs.
    type: path
  ha1:
    description: Internal, set by the action plugin.
    type: str
  ha1b:
    description: Internal, set by the action plugin.
    type: str
"""

EXAMPLES = r"""
- name: Add a staff member
  sipwave.platform.staff_account:
    login: jkowalska
    domain: sip.example.test
    display_name: Joanna Kowalska
    email: j.kowalska@example.test
    department: support
    devices: ["yealink:T54W:80:5e:c0:11:22:33"]
    dialin_numbers: ["+48601234567"]
    number_plan: {country_code: "48", national_lengths: [9]}
    number_inventory: [{area: "+4822", first: "+48225558000", last: "+48225558099"}]
    site_secret: "{{ sipwave_site_secret }}"
    export: "{{ sipwave_legacy_export }}"
    database: /var/lib/kamailio/sipwave.sqlite
"""

RETURN = r"""
staff:
  description: The member's account after the run (identity, number, phones...); no secret.
  type: dict
  returned: always
number:
  description: The member's number (E.164).
  type: str
  returned: always
routing_generation:
  description: The database's routing generation after the run (for reload_routing).
  type: int
  returned: always
"""

from datetime import date  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sipwave.platform.plugins.module_utils.e164 import (  # noqa: E402
    NumberError,
    plan_from_dict,
)
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (  # noqa: E402
    DATABASE_REQUIRED_IF,
    DatabaseError,
    database_argument_spec,
)
from ansible_collections.sipwave.platform.plugins.module_utils.staff import (  # noqa: E402
    apply_member,
    member_from_input,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.model import (  # noqa: E402
    MigrationError,
    new_run_id,
    temporary_pools,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.tables import (  # noqa: E402
    connect_or_empty,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **database_argument_spec(),
            "login": {"type": "str", "required": True},
            "domain": {"type": "str", "required": True},
            "display_name": {"type": "str", "default": ""},
            "email": {"type": "str", "default": ""},
            "department": {"type": "str", "default": ""},
            "devices": {"type": "list", "elements": "str", "default": []},
            "number": {"type": "str"},
            "dialin_numbers": {"type": "list", "elements": "str", "default": []},
            "number_plan": {"type": "dict", "required": True},
            "number_inventory": {"type": "list", "elements": "dict", "required": True},
            "login_prefix": {"type": "str", "default": ""},
            "today": {"type": "str"},
            "run_id": {"type": "str"},
            "ha1": {"type": "str", "no_log": True},
            "ha1b": {"type": "str", "no_log": True},
        },
        required_if=list(DATABASE_REQUIRED_IF),
        supports_check_mode=True,
    )
    params = module.params
    if not params["ha1"] or not params["ha1b"]:
        module.fail_json(msg="ha1 and ha1b are set by the action plugin: run the module as a "
                         "task (sipwave.platform.staff_account) with site_secret")  # fmt: skip
    try:
        today = date.fromisoformat(params["today"]) if params["today"] else date.today()
        member = member_from_input(params, plan_from_dict(params["number_plan"]), params["domain"])
        pools = temporary_pools(params["number_inventory"])
    except ValueError as exc:  # a bad date, a bad number plan
        module.fail_json(msg=str(exc))
    except (MigrationError, NumberError) as exc:
        module.fail_json(msg=str(exc))
    try:
        conn = connect_or_empty(params, module.check_mode)
    except DatabaseError as exc:
        module.fail_json(msg=str(exc))
    try:
        plan, generation = apply_member(
            conn, member, (params["ha1"].lower(), params["ha1b"].lower()), pools, today,
            params["login_prefix"], params["run_id"] or new_run_id(), module.check_mode,
        )  # fmt: skip
    except MigrationError as exc:
        module.fail_json(msg=str(exc))
    except conn.Error as exc:
        module.fail_json(msg=f"database error: {exc.__class__.__name__}: {exc}")
    finally:
        conn.close()
    result = {
        "changed": plan.changed,
        "staff": plan.after,
        "number": plan.number,
        "routing_generation": generation,
    }
    if module._diff:
        result["diff"] = {"before": plan.before or {}, "after": plan.after}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
