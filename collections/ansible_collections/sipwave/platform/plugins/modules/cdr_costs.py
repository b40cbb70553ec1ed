#!/usr/bin/python
# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: cdr_costs
short_description: The dial-in calls of a month on this PBX, rated with the carriers' tariffs
version_added: 0.6.0
description:
  - Reads the PBX's CDRs (cdr_sqlite3_custom, table C(cdr)) read-only and returns its dial-in
    calls of O(period) as calls of the cost report, like M(sipwave.platform.call_costs) does
    for a proxy. Dial-in calls leave straight to the carrier, so the proxy has no record of
    what they cost.
  - Only the carrier leg's talk time is billed (recorded by the dialplan in the column
    C(talk_ms), from the carrier's answer), never the PIN phase before it. A call whose Dial was
    not answered (refused, wrong PIN) is listed at no cost.
  - Rows of one channel (its uniqueid) are one call. A row whose time cannot be read is left
    out, counted in RV(unreadable), and warned about.
author:
  - sipwave developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
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
    description: The tariffs, as for M(sipwave.platform.call_costs).
    type: list
    elements: dict
    default: []
  database:
    description: The CDR database.
    type: path
    default: /var/log/asterisk/master.db
  carrier:
    description: The carrier of the PBX's trunk, whose tariffs rate its calls.
    type: str
    required: true
  site:
    description: The site the PBX's calls are reported under (empty for none).
    type: str
    default: ""
  pbx:
    description: The PBX's name, part of each record's identity.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Rate this month's dial-in calls
  sipwave.platform.cdr_costs:
    period: "2026-12"
    carrier: pstn
    pbx: "{{ inventory_hostname }}"
    tariffs:
      - {carrier: pstn, prefix: "+48", per_minute: "0.09"}
  register: costs
"""

RETURN = r"""
calls:
  description: One entry per call, as M(sipwave.platform.call_costs) returns them.
  type: list
  returned: always
unreadable:
  description: CDR rows left out because their time cannot be read.
  type: int
  returned: always
"""

import os  # noqa: E402
import re  # noqa: E402
import sqlite3  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sipwave.platform.plugins.module_utils.call_costs import (  # noqa: E402
    CostError,
    period_bounds,
    rate,
    tariffs,
)
from ansible_collections.sipwave.platform.plugins.module_utils.cdr_costs import (  # noqa: E402
    read_dialin_calls,
)

_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "period": {"type": "str", "required": True},
            "tariffs": {"type": "list", "elements": "dict", "default": []},
            "database": {"type": "path", "default": "/var/log/asterisk/master.db"},
            "carrier": {"type": "str", "required": True},
            "site": {"type": "str", "default": ""},
            "pbx": {"type": "str", "required": True},
        },
        supports_check_mode=True,
    )
    params = module.params
    try:
        known = tariffs(params["tariffs"])
        period_bounds(params["period"])
    except CostError as exc:
        module.fail_json(msg=str(exc))
    for name in ("carrier", "pbx"):
        if not _NAME.fullmatch(params[name]):
            module.fail_json(msg=f"{name} {params[name]!r}: letters, digits and ._- only")
    if params["site"] and not _NAME.fullmatch(params["site"]):
        module.fail_json(msg=f"site {params['site']!r}: letters, digits and ._- only")
    if not os.path.exists(params["database"]):
        module.exit_json(changed=False, calls=[], unreadable=0)
    try:
        with sqlite3.connect(f"file:{params['database']}?mode=ro", uri=True, timeout=10) as db:
            found, unreadable = read_dialin_calls(
                db.cursor(), params["period"], pbx=params["pbx"], carrier=params["carrier"],
                site=params["site"],
            )  # fmt: skip
        db.close()
    except sqlite3.Error as exc:
        module.fail_json(msg=f"{params['database']}: {exc}")
    if unreadable:
        module.warn(f"{unreadable} CDR rows have a time that cannot be read: left out")
    module.exit_json(changed=False, calls=rate(found, known), unreadable=unreadable)


if __name__ == "__main__":
    main()
