#!/usr/bin/python
# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: wave_registrations
short_description: The accounts of a wave in phase 2 without a phone registered since
version_added: 0.6.0
description:
  - Reads the wave's accounts in phase 2 from this proxy's database and lists those with no
    contact of their current identity in C(location) since their phase 2 began (the same
    test as the cutover's).
  - A phone registers with one proxy of a site. Combine the results of every proxy with the
    C(sipwave.platform.unregistered_everywhere) filter, as C(playbooks/unregistered_report.yml)
    does.
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
  wave:
    description: The wave's name.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: List the wave's phase-2 accounts without a registration
  sipwave.platform.wave_registrations:
    wave: wave1
  register: registrations
"""

RETURN = r"""
phase2:
  description: How many of the wave's accounts are in phase 2 here.
  type: int
  returned: always
unregistered:
  description: >-
    The phase-2 accounts without a registration since phase 2 began, in login order: login,
    identity (user@domain), phase2_since, grace_until (YYYY-MM-DD) and
    legacy_identity_registered (a phone still registers with the legacy identity).
  type: list
  elements: dict
  returned: always
"""

import re  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (  # noqa: E402
    DATABASE_REQUIRED_IF,
    connect_for,
    database_argument_spec,
)
from ansible_collections.sipwave.platform.plugins.module_utils.registrations import (  # noqa: E402
    unregistered_in_phase2,
)

WAVE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def main() -> None:
    module = AnsibleModule(
        argument_spec={"wave": {"type": "str", "required": True}, **database_argument_spec()},
        required_if=list(DATABASE_REQUIRED_IF),
        supports_check_mode=True,
    )
    wave = module.params["wave"]
    if not WAVE_NAME.fullmatch(wave):
        module.fail_json(msg=f"wave: {wave!r} is no wave name (letters, digits, _.-)")
    conn = connect_for(module)
    try:
        result = unregistered_in_phase2(conn, wave)
    except conn.Error as exc:
        module.fail_json(msg=f"{module.params['backend']} database error: {exc}")
    finally:
        conn.close()
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
