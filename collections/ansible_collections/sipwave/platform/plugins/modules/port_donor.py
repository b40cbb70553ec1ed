#!/usr/bin/python
# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: port_donor
short_description: Migration codes for customers who leave, and answers to port requests
version_added: 0.5.0
description:
  - Runs where sipwave is the losing operator.
  - With O(operation=issue), gives every closed account whose numbers are kept for porting
    a migration code in the layout of O(regime). The module derives the secret code from
    O(site_secret) and keeps only its salted scrypt hash. The mail that shows the secret code
    to the customer derives it again. Codes of accounts that are no longer closed (a
    rollback reopened them) are withdrawn.
  - On a platform without the wave engine's tables (the lab's legacy operator), it issues
    codes to the O(accounts) given instead.
  - With O(operation=answer), answers the request records of O(request_files) addressed to
    O(operator). A request is C(accepted) when its code is known and issued, the hash of
    its secret code matches, its numbers are the code's and the account is closed.
    Otherwise it is C(rejected) with a reason. The module counts wrong secret codes per
    code, and the fourth blocks the code. It writes the answer records into O(directory).
    A request answered before gets the same answer again, and nothing is counted twice.
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
    description: Issue codes, or answer requests.
    type: str
    choices: [issue, answer]
    required: true
  regime:
    description: The migration code layout (the parsed regime file).
    type: dict
  operator:
    description: This operator's code (the code's operator field, the exchange's donor).
    type: str
    required: true
  service:
    description: The service field of issued codes.
    type: str
    default: "001"
  country_code:
    description: The country code stripped from a number to make the code's resource field.
    type: str
    default: "48"
  site_secret:
    description: The secret the secret codes are derived from (never logged).
    type: str
  accounts:
    description: Without the wave engine's tables, the accounts to issue codes to (C(login),
      C(numbers)).
    type: list
    elements: dict
  request_files:
    description: For O(operation=answer), the request record files, each C(name) and
      C(content). Not logged, because they hold the hashes of the secret codes.
    type: list
    elements: dict
    default: []
  directory:
    description: For O(operation=answer), where on the host to write the answer record files,
      one per recipient, named C(<donor>-<recipient>-<run_id>.answers.csv).
    type: path
  run_id:
    description: The run's identifier, part of the answer files' names.
    type: str
    default: manual
"""

EXAMPLES = r"""
- name: Issue migration codes to the customers who closed
  sipwave.platform.port_donor:
    operation: issue
    operator: SWV
    regime: "{{ lookup('ansible.builtin.file', 'files/porting_regimes/it.yml') | from_yaml }}"
    site_secret: "{{ sipwave_site_secret }}"
"""

RETURN = r"""
issued:
  description: Codes issued by this run (login, migration_code, numbers).
  type: list
  returned: when operation is issue
codes:
  description: Every code in force (login, migration_code, numbers), for the customers' mails.
  type: list
  returned: when operation is issue
withdrawn:
  description: Codes withdrawn because their account is live again.
  type: list
  returned: when operation is issue
problems:
  description: Accounts that got no code, and why.
  type: list
  returned: when operation is issue
answers:
  description: The answers (ref, recipient, answer, reason), also written to the files.
  type: list
  returned: when operation is answer
paths:
  description: The answer record files written on the host.
  type: list
  returned: when operation is answer
"""

import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sipwave.platform.plugins.module_utils import files  # noqa: E402
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (  # noqa: E402
    DATABASE_REQUIRED_IF,
    connect_for,
    database_argument_spec,
)
from ansible_collections.sipwave.platform.plugins.module_utils.porting import (  # noqa: E402
    donor,
    exchange,
    regime,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "operation": {"type": "str", "required": True, "choices": ["issue", "answer"]},
            "regime": {"type": "dict"},
            "operator": {"type": "str", "required": True},
            "service": {"type": "str", "default": "001"},
            "country_code": {"type": "str", "default": "48"},
            "site_secret": {"type": "str", "no_log": True},
            "accounts": {"type": "list", "elements": "dict"},
            "request_files": {"type": "list", "elements": "dict", "default": [], "no_log": True},
            "directory": {"type": "path"},
            "run_id": {"type": "str", "default": "manual"},
            **database_argument_spec(),
        },
        required_if=[
            *DATABASE_REQUIRED_IF,
            ("operation", "issue", ("regime", "site_secret")),
            ("operation", "answer", ("directory",)),
        ],
        supports_check_mode=True,
    )
    params = module.params
    conn = connect_for(module)
    try:
        if params["operation"] == "issue":
            result = donor.issue(
                conn, regime.load(params["regime"], "regime"), operator=params["operator"],
                service=params["service"], country_code=params["country_code"],
                site_secret=params["site_secret"], accounts=params["accounts"],
                check_mode=module.check_mode,
            )  # fmt: skip
        else:
            requests = []
            for entry in params["request_files"]:
                name = str(entry.get("name") or "requests")
                records = exchange.parse_requests(name, str(entry.get("content") or ""))
                exchange.check_sender(name, records, "recipient", "donor")
                requests.extend({**record, "file": name} for record in records)
            result = donor.answer(
                conn, requests, operator=params["operator"], check_mode=module.check_mode
            )
            result["paths"] = []
            grouped = exchange.by_counterpart(result["answers"], "recipient")
            for recipient, rows in grouped.items():
                name = exchange.file_name(
                    params["operator"], recipient, params["run_id"], "answers"
                )
                result["paths"].append(os.path.join(params["directory"], name))
                if not module.check_mode:
                    os.makedirs(params["directory"], mode=0o700, exist_ok=True)
                    files.atomic_write(result["paths"][-1], exchange.render_answers(rows))
    except ValueError as exc:
        # Regime, exchange and port errors name the entry, file and line; never a secret.
        module.fail_json(msg=str(exc))
    except conn.Error as exc:
        module.fail_json(msg=f"{params['backend']} database error: {exc}")
    finally:
        conn.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
