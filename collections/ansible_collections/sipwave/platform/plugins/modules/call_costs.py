#!/usr/bin/python
# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: call_costs
short_description: The calls of a month on this proxy, rated with the carriers' tariffs
version_added: 0.5.0
description:
  - Reads every call whose final answer came in O(period) from the proxy's call records.
    C(acc) has one row per INVITE transaction, and C(sipwave_call_end) the BYEs of answered
    calls. The duration runs from the answer to the first BYE of the same dialog (Call-ID,
    From and To tags) recorded at or after the answer. For an outbound call only a BYE the
    carrier confirmed counts (it sent the BYE, or answered the subscriber's BYE with 2xx).
  - An answered call without such an end is C(open). It is listed with cost C(null) and
    counted apart, never priced as free.
  - A record whose time cannot be read is left out, counted in RV(unreadable), and warned
    about.
  - Rates the answered outbound calls with O(tariffs). The tariff is the carrier's, for the
    longest prefix of the called number. The charge is a set-up fee plus the per-minute price
    over the billed seconds, rounded half up to the cent. The first increment is billed
    whole, then every started increment.
  - Inbound and internal calls cost nothing. An outbound call without a tariff is returned
    with cost C(null), never guessed.
  - Merge the calls of every proxy with the C(sipwave.platform.cost_report) filter, as
    C(playbooks/cost_report.yml) does.
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
  period:
    description: The month, C(YYYY-MM) (UTC).
    type: str
    required: true
  tariffs:
    description:
      - The tariffs, each C(carrier), C(prefix) (E.164), C(per_minute) (a price), and
        optionally C(increment) (seconds, 60), C(first) (the first increment, the
        increment by default) and C(setup) (a fee per answered call, 0).
    type: list
    elements: dict
    default: []
"""

EXAMPLES = r"""
- name: Rate this month's calls
  sipwave.platform.call_costs:
    period: "2026-12"
    tariffs:
      - {carrier: carrier-a, prefix: "+48", per_minute: "0.09", increment: 1, first: 30}
  register: costs
"""

RETURN = r"""
calls:
  description: >-
    One entry per call (callid, from_tag, to_tag, answered_at, site, department, account,
    carrier, callee, direction, sip_code, state (ended, open or unanswered), seconds,
    billed_seconds, cost as text or null).
  type: list
  returned: always
unrated:
  description: Outbound answered calls without a tariff.
  type: int
  returned: always
open:
  description: Outbound answered calls without an end their carrier confirmed.
  type: int
  returned: always
unreadable:
  description: Call records left out because their time cannot be read.
  type: int
  returned: always
"""

import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sipwave.platform.plugins.module_utils.call_costs import (  # noqa: E402
    OPEN,
    CostError,
    period_bounds,
    rate,
    read_calls,
    tariffs,
)
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db import schema  # noqa: E402
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (  # noqa: E402
    DATABASE_REQUIRED_IF,
    DatabaseError,
    connect_with,
    database_argument_spec,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "period": {"type": "str", "required": True},
            "tariffs": {"type": "list", "elements": "dict", "default": []},
            **database_argument_spec(),
        },
        required_if=list(DATABASE_REQUIRED_IF),
        supports_check_mode=True,
    )
    params = module.params
    try:
        known = tariffs(params["tariffs"])
        period_bounds(params["period"])
    except CostError as exc:
        module.fail_json(msg=str(exc))
    if params["backend"] == "sqlite" and not os.path.exists(params["database"]):
        module.exit_json(changed=False, calls=[], unrated=0, open=0, unreadable=0)
    try:
        conn = connect_with(params)
    except DatabaseError as exc:
        module.fail_json(msg=str(exc))
    try:
        cursor = conn.connection.cursor()
        calls, unreadable = [], 0
        if schema.table_exists(conn, cursor, "acc"):
            found, unreadable = read_calls(cursor, params["period"])
            calls = rate(found, known)
        conn.connection.rollback()
    except conn.Error as exc:
        module.fail_json(msg=f"{params['backend']} database error: {exc}")
    finally:
        conn.close()
    if unreadable:
        module.warn(f"{unreadable} call records have a time that cannot be read: left out")
    open_calls = sum(1 for c in calls if c["direction"] == "outbound" and c["state"] == OPEN)
    unrated = sum(1 for call in calls if call["cost"] is None) - open_calls
    module.exit_json(
        changed=False, calls=calls, unrated=unrated, open=open_calls, unreadable=unreadable
    )


if __name__ == "__main__":
    main()
