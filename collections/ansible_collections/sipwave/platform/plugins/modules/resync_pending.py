#!/usr/bin/python
# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: resync_pending
short_description: Forget the phones that were told to re-sync
version_added: 0.4.0
description:
  - M(sipwave.platform.provisioning_configs) records each device whose files change in a
    pending file on the provisioning host before it writes them. This module removes the
    devices that every proxy settled in its M(sipwave.platform.check_sync) run (each
    contact answered or had its time until the run's deadline, or none was registered)
    and keeps the others (a lookup or NOTIFY that could not be started), so the next run
    tells them again.
  - A proxy whose check_sync failed or did not run settles nothing. The file is replaced
    atomically and removed when no device is owed any more.
author:
  - sipwave developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports which devices would be forgotten; writes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  path:
    description: The pending file (O(sipwave.platform.provisioning_configs#module:pending_file)).
    type: path
    required: true
  check_sync_results:
    description:
      - The registered result of M(sipwave.platform.check_sync) of every proxy of the run,
        one per proxy (an empty dictionary for a proxy without a result).
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Forget the phones every proxy told
  sipwave.platform.resync_pending:
    path: /srv/sipwave-provisioning/resync-pending.json
    check_sync_results: "{{ groups['proxies'] | map('extract', hostvars)
                            | map(attribute='check_sync_result', default={}) }}"
"""

RETURN = r"""
settled:
  description: MACs removed from the pending file (or that would be, in check mode).
  type: list
  elements: str
  returned: always
owed:
  description: MACs still owed a re-sync after this run.
  type: list
  elements: str
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sipwave.platform.plugins.module_utils.resync_pending import (  # noqa: E402
    PendingError,
    load_pending,
    save_pending,
    settled_macs,
    without,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "check_sync_results": {"type": "list", "elements": "dict", "required": True},
        },
        supports_check_mode=True,
    )
    path = module.params["path"]
    try:
        pending = load_pending(path)
        settled = sorted(settled_macs(module.params["check_sync_results"]) & set(pending))
        remaining = without(pending, settled)
        if settled and not module.check_mode:
            save_pending(path, remaining)
    except PendingError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg=f"{path}: cannot write: {exc.strerror}")
    module.exit_json(changed=bool(settled), settled=settled, owed=sorted(remaining))


if __name__ == "__main__":
    main()
