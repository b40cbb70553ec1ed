#!/usr/bin/python
# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: port_request
short_description: Port requests of customers whose numbers come to this platform
version_added: 0.5.0
description:
  - Keeps the port requests in the proxy database and moves them through their states
    C(requested), C(validated) (phase 1), C(donor_notified), C(donor_accepted) or
    C(donor_rejected) (phase 2), C(scheduled), C(ported) or C(failed) (phase 3), or
    C(cancelled). Only those transitions exist; each writes one event row (who, when, why).
  - The account's numbers follow the request in the number inventory. C(porting) while it
    is open; C(active) once ported, and the account's temporary number goes back to its
    pool; C(legacy) again when the request ends any other way.
  - The secret code is kept only as a salted scrypt hash and never returned. A request
    whose secret code the donor rejected takes a new one (O(operation=resubmit)). Its
    fourth wrong secret code blocks it (C(failed)).
  - The donor exchange is file based. O(operation=outgoing) writes the request records of
    the C(validated) requests to O(path). O(operation=notified) marks them sent.
    O(operation=answers) applies the donors' answer files.
author:
  - sipwave developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - sipwave.platform.kamailio_db
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: One line per request that moved, its reference and state.
  platform:
    platforms: posix
options:
  operation:
    description: The step to make.
    type: str
    choices: [submit, resubmit, outgoing, notified, answers, schedule, complete, cancel, list]
    required: true
  ref:
    description: For O(operation=resubmit), the request's reference.
    type: str
  refs:
    description: References of the requests to move. Without it, O(operation=schedule)
      takes every accepted request and O(operation=complete) every scheduled one whose date
      has come.
    type: list
    elements: str
    default: []
  login:
    description: For O(operation=list), the account (legacy login) whose requests to list.
    type: str
  requests:
    description:
      - For O(operation=submit), the customers' requests, stored in one transaction; one bad
        request stores none, and the error names it.
    type: list
    elements: dict
    default: []
    suboptions:
      ref:
        description: The request's reference.
        type: str
        required: true
      login:
        description: The account (legacy login).
        type: str
        required: true
      migration_code:
        description: The migration code the customer gave.
        type: str
        required: true
      secret_code:
        description: The secret code the customer gave (never logged or stored).
        type: str
        required: true
      numbers:
        description: The E.164 numbers to port; by default every number of the account
          still at the old operator.
        type: list
        elements: str
        default: []
      requested_date:
        description: The date the customer asks for (YYYY-MM-DD).
        type: str
        required: true
  requests_csv:
    description:
      - For O(operation=submit), more requests as CSV text with a header row and the columns
        C(ref), C(login), C(migration_code), C(secret_code), C(numbers) (E.164, C(;)-separated,
        may be empty) and C(requested_date). Not logged, because it holds secret codes.
    type: str
  requests_csv_name:
    description: The name of O(requests_csv) in error messages (its file).
    type: str
    default: requests.csv
  secret_code:
    description: For O(operation=resubmit), the new secret code (never logged or stored).
    type: str
  date:
    description: For O(operation=schedule), the provisioning date; by default the later of the
      requested date and the donor's. For O(operation=complete), the date whose scheduled
      requests are due (today by default).
    type: str
  outcome:
    description: For O(operation=complete), whether the provisioning succeeded.
    type: str
    choices: [ported, failed]
    default: ported
  reason:
    description: Why (O(operation=cancel), O(outcome=failed)); goes into the event row.
    type: str
    default: ""
  regime:
    description: The migration code layout (the parsed regime file).
    type: dict
  recipient:
    description: This operator's code in the exchange records.
    type: str
  directory:
    description: For O(operation=outgoing), where on the host to write the request record
      files, one per donor, named C(<recipient>-<donor>-<run_id>.requests.csv).
    type: path
  answer_files:
    description: For O(operation=answers), the donors' answer files, each C(name) and C(content).
    type: list
    elements: dict
    default: []
  actor:
    description: Who makes the step, for the event rows.
    type: str
    default: sipwave
  run_id:
    description: The run's identifier in the event rows.
    type: str
    default: manual
"""

EXAMPLES = r"""
- name: Take a customer's port request (phase 1)
  sipwave.platform.port_request:
    operation: submit
    requests:
      - ref: P20261204-0001
        login: "481200004"
        migration_code: TNF 220000004 001 K
        secret_code: "{{ customer_secret_code }}"
        requested_date: "2026-12-20"
    regime: "{{ lookup('ansible.builtin.file', 'files/porting_regimes/it.yml') | from_yaml }}"
"""

RETURN = r"""
events:
  description: The transitions this step made (ref, login, from, to, reason, at, numbers).
  type: list
  returned: always
requests:
  description: The requests this step touched (never the secret code or its hash).
  type: list
  returned: always
returned_temporary:
  description: Temporary numbers given back to their pool because the port completed.
  type: list
  returned: always
refs:
  description: For O(operation=outgoing), the requests written to the record files.
  type: list
  returned: when operation is outgoing
paths:
  description: For O(operation=outgoing), the record files written on the host.
  type: list
  returned: when operation is outgoing
skipped:
  description: For O(operation=answers), requests whose answer had been applied before.
  type: list
  returned: when operation is answers
routing_generation:
  description: The database's routing generation after the step.
  type: int
  returned: always
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
    exchange,
    recipient,
    regime,
)
from ansible_collections.sipwave.platform.plugins.module_utils.porting.requests import (  # noqa: E402
    PortError,
    today,
)
from ansible_collections.sipwave.platform.plugins.module_utils.porting.secret import (  # noqa: E402
    SecretError,
)
from ansible_collections.sipwave.platform.plugins.module_utils.porting.states import (  # noqa: E402
    TransitionError,
)

OPERATIONS = ["submit", "resubmit", "outgoing", "notified", "answers", "schedule", "complete",
              "cancel", "list"]  # fmt: skip


def step(module: AnsibleModule, conn) -> dict:
    params = module.params
    common = {"run_id": params["run_id"], "actor": params["actor"], "check_mode": module.check_mode}
    operation = params["operation"]
    if operation == "submit":
        layout = regime.load(params["regime"], "regime")
        requests = list(params["requests"])
        if params["requests_csv"]:
            requests += exchange.parse_customer_requests(
                params["requests_csv_name"], params["requests_csv"]
            )
        return recipient.submit(conn, layout, requests, **common)
    if operation == "resubmit":
        return recipient.resubmit(
            conn, ref=params["ref"], secret_code=params["secret_code"], **common
        )
    if operation == "outgoing":
        records = recipient.outgoing(conn, params["recipient"])
        paths = []
        for donor, rows in exchange.by_counterpart(records, "donor").items():
            name = exchange.file_name(params["recipient"], donor, params["run_id"], "requests")
            paths.append(os.path.join(params["directory"], name))
            if not module.check_mode:
                os.makedirs(params["directory"], mode=0o700, exist_ok=True)
                files.atomic_write(paths[-1], exchange.render_requests(rows))
        return {"changed": bool(records), "refs": [r["ref"] for r in records], "events": [],
                "requests": [], "returned_temporary": [], "paths": paths}  # fmt: skip
    if operation == "notified":
        return recipient.mark_notified(conn, params["refs"], **common)
    if operation == "answers":
        answers = []
        for entry in params["answer_files"]:
            name = str(entry.get("name") or "answers")
            records = exchange.parse_answers(name, str(entry.get("content") or ""))
            exchange.check_sender(name, records, "donor", "recipient")
            answers.extend({**record, "file": name} for record in records)
        return recipient.apply_answers(conn, answers, params["recipient"], **common)
    if operation == "schedule":
        return recipient.schedule(conn, params["refs"], params["date"], **common)
    if operation == "complete":
        return recipient.complete(
            conn, params["refs"], params["outcome"], params["reason"],
            on=params["date"] or today(), **common,
        )  # fmt: skip
    if operation == "cancel":
        return recipient.cancel(conn, params["refs"], params["reason"], **common)
    return {"changed": False, "requests": recipient.listing(conn, params["login"]), "events": [],
            "returned_temporary": []}  # fmt: skip


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "operation": {"type": "str", "required": True, "choices": OPERATIONS},
            "ref": {"type": "str"},
            "refs": {"type": "list", "elements": "str", "default": []},
            "login": {"type": "str"},
            "requests": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "ref": {"type": "str", "required": True},
                    "login": {"type": "str", "required": True},
                    "migration_code": {"type": "str", "required": True},
                    "secret_code": {"type": "str", "required": True, "no_log": True},
                    "numbers": {"type": "list", "elements": "str", "default": []},
                    "requested_date": {"type": "str", "required": True},
                },
            },
            "requests_csv": {"type": "str", "no_log": True},
            "requests_csv_name": {"type": "str", "default": "requests.csv"},
            "secret_code": {"type": "str", "no_log": True},
            "date": {"type": "str"},
            "outcome": {"type": "str", "default": "ported", "choices": ["ported", "failed"]},
            "reason": {"type": "str", "default": ""},
            "regime": {"type": "dict"},
            "recipient": {"type": "str"},
            "directory": {"type": "path"},
            "answer_files": {"type": "list", "elements": "dict", "default": []},
            "actor": {"type": "str", "default": "sipwave"},
            "run_id": {"type": "str", "default": "manual"},
            **database_argument_spec(),
        },
        required_if=[
            *DATABASE_REQUIRED_IF,
            ("operation", "submit", ("regime",)),
            ("operation", "resubmit", ("ref", "secret_code")),
            ("operation", "outgoing", ("recipient", "directory")),
            ("operation", "answers", ("recipient",)),
            ("operation", "cancel", ("refs",)),
        ],
        supports_check_mode=True,
    )
    params = module.params
    conn = connect_for(module)
    try:
        result = step(module, conn)
    except (PortError, TransitionError, SecretError, ValueError) as exc:
        # regime.CodeError, regime.RegimeError and exchange.ExchangeError are ValueErrors
        # whose messages name the field, entry or file and line; none holds a secret.
        module.fail_json(msg=str(exc))
    except conn.Error as exc:
        module.fail_json(msg=f"{params['backend']} database error: {exc}")
    finally:
        conn.close()
    if module._diff:
        result["diff"] = {
            "before": "".join(f"{e['ref']}: {e['from']}\n" for e in result["events"] if e["from"]),
            "after": "".join(f"{e['ref']}: {e['to']}\n" for e in result["events"]),
        }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
