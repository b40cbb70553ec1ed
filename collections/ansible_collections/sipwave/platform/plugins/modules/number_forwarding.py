#!/usr/bin/python
# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: number_forwarding
short_description: Read or set which old numbers forward to the accounts' temporary numbers
version_added: 0.4.0
description:
  - During the parallel run a migrated account's own numbers are still at the old operator,
    which forwards calls to them to the account's temporary number on the new platform.
  - With O(operation=read), on a proxy of the new platform, lists every number in state
    C(legacy) of an account served there that holds a temporary number, with that number.
  - With O(operation=apply), on the legacy platform (the lab's, deployed by the kamailio
    role), makes its C(sipwave_forwarding) table exactly O(forwarding) in one transaction
    and counts up its routing generation; its router then forwards calls to those numbers
    (C(kamailio_forwarding_destination)) with a C(Diversion) header naming the old number.
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
    details: One C(number -> target) per line.
  platform:
    platforms: posix
options:
  operation:
    description: Read the pairs from a proxy, or apply them to the legacy platform.
    type: str
    choices: [read, apply]
    default: read
  forwarding:
    description:
      - For O(operation=apply), the pairs as O(operation=read) returned them (JSON text of a
        list of C([number, target]), both E.164); the table holds exactly these afterwards.
    type: str
"""

EXAMPLES = r"""
- name: Read which old numbers forward where
  sipwave.platform.number_forwarding:
    operation: read
  run_once: true
  register: forwarding

- name: Forward them on the legacy platform
  sipwave.platform.number_forwarding:
    operation: apply
    forwarding: "{{ forwarding.forwarding }}"
"""

RETURN = r"""
forwarding:
  description: JSON text of the C([number, target]) pairs (O(operation=read)).
  type: str
  returned: when operation is read
count:
  description: How many numbers forward.
  type: int
  returned: always
added:
  description: C([number, target]) pairs that were not there before.
  type: list
  returned: when operation is apply
changed_targets:
  description: C([number, old target, new target]).
  type: list
  returned: when operation is apply
removed:
  description: C([number, target]) pairs taken away.
  type: list
  returned: when operation is apply
routing_generation:
  description: The database's routing generation after the change (see the wave module).
  type: int
  returned: when operation is apply
"""

import json  # noqa: E402
import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sipwave.platform.plugins.module_utils.forwarding import (  # noqa: E402
    ForwardingError,
    apply_pairs,
    checked_pairs,
    read_pairs,
)
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (  # noqa: E402
    DATABASE_REQUIRED_IF,
    DatabaseError,
    connect_with,
    database_argument_spec,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.tables import (  # noqa: E402
    empty_database,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "operation": {"type": "str", "default": "read", "choices": ["read", "apply"]},
            "forwarding": {"type": "str"},
            **database_argument_spec(),
        },
        required_if=[*DATABASE_REQUIRED_IF, ("operation", "apply", ("forwarding",))],
        supports_check_mode=True,
    )
    params = module.params
    wanted: dict[str, str] = {}
    if params["operation"] == "apply":
        try:
            wanted = checked_pairs(json.loads(params["forwarding"]))
        except ValueError as exc:  # also ForwardingError
            message = str(exc) if isinstance(exc, ForwardingError) else f"not JSON: {exc}"
            module.fail_json(msg=f"forwarding: {message}")
    missing = params["backend"] == "sqlite" and not os.path.exists(params["database"])
    if missing and params["operation"] == "read":
        module.exit_json(changed=False, forwarding="[]", count=0)
    if missing and not module.check_mode:
        module.fail_json(msg=f"{params['database']} does not exist: deploy the kamailio role")
    try:
        # In check mode the play that creates the database did not run either: nothing to
        # open, and nothing may be created.
        conn = empty_database() if missing else connect_with(params)
    except DatabaseError as exc:
        module.fail_json(msg=str(exc))
    try:
        if params["operation"] == "read":
            pairs = read_pairs(conn)
            module.exit_json(changed=False, forwarding=json.dumps(pairs), count=len(pairs))
        changes = apply_pairs(conn, wanted, module.check_mode)
    except conn.Error as exc:
        module.fail_json(msg=f"{params['backend']} database error: {exc}")
    finally:
        conn.close()
    changed = bool(changes["added"] or changes["changed"] or changes["removed"])
    result = {
        "changed": changed,
        "count": len(wanted),
        "added": changes["added"],
        "changed_targets": changes["changed"],
        "removed": changes["removed"],
        "routing_generation": changes["routing_generation"],
    }
    if module._diff:
        before = [*changes["removed"], *([n, old] for n, old, _new in changes["changed"])]
        after = [*changes["added"], *([n, new] for n, _old, new in changes["changed"])]
        result["diff"] = {
            "before": "".join(f"{n} -> {t}\n" for n, t in sorted(before)),
            "after": "".join(f"{n} -> {t}\n" for n, t in sorted(after)),
        }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
