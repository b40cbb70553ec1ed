#!/usr/bin/python
# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: kamailio_subscribers
short_description: Manage Kamailio SIP subscribers (HA1 hashes only) in one batch
version_added: 0.1.0
description:
  - Adds, updates and optionally removes rows of Kamailio's C(subscriber) table in a single
    transaction, so that a whole batch of accounts is one task.
  - Only the HA1 hashes are stored. A plaintext password given here is hashed on the target
    host and never written anywhere.
  - Passwords and hashes never appear in the result, the diff, error messages or the target's
    log, even without C(no_log) on the task. Invalid entries are reported by list index and
    username.
  - The table must exist; the C(kamailio) role creates it.
author:
  - sipwave developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - sipwave.platform.kamailio_db
attributes:
  check_mode:
    support: full
    details: A missing SQLite database file counts as an empty table in check mode.
  diff_mode:
    support: full
    details: One C(user@domain) per line; updated entries are marked, hashes are never shown.
  platform:
    platforms: posix
requirements:
  - python3-psycopg2 on the target host for O(backend=postgres).
options:
  subscribers:
    description:
      - The subscribers that must exist with exactly these credentials.
      - Give exactly one of O(subscribers[].password) and O(subscribers[].ha1).
    type: list
    elements: dict
    default: []
    suboptions:
      username:
        description: SIP user name, at most 64 characters.
        type: str
        required: true
      domain:
        description: SIP domain (realm), at most 64 characters.
        type: str
        required: true
      password:
        description: Plaintext password; only its HA1 and HA1B hashes are stored.
        type: str
      ha1:
        description: Precomputed MD5 of C(username:domain:password), 32 lowercase hex digits.
        type: str
      ha1b:
        description:
          - Precomputed MD5 of C(username@domain:domain:password), only with
            O(subscribers[].ha1). Stored as an empty string when omitted.
        type: str
  exclusive:
    description:
      - Remove subscribers that are not listed from every domain that appears in
        O(subscribers).
      - Subscribers of other domains are never touched.
    type: bool
    default: false
  exclusive_domains:
    description:
      - Domains whose unlisted subscribers are removed, whatever O(exclusive) says.
      - Lets a play empty a domain by listing it here with no subscribers in it.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Make sure the wave's accounts can register
  sipwave.platform.kamailio_subscribers:
    database: /var/lib/kamailio/kamailio.sqlite
    subscribers:
      - username: "4930123456"
        domain: sip.example.net
        password: "{{ vault_sip_passwords['4930123456'] }}"
      - username: "4930123457"
        domain: sip.example.net
        ha1: 5f4dcc3b5aa765d61d8327deb882cf99

- name: The legacy export is the whole truth for its domain
  sipwave.platform.kamailio_subscribers:
    backend: postgres
    db_host: db.example.net
    db_name: kamailio
    db_user: kamailio
    db_password: "{{ vault_kamailio_db_password }}"
    subscribers: "{{ legacy_accounts }}"
    exclusive: true

- name: Close a domain
  sipwave.platform.kamailio_subscribers:
    database: /var/lib/kamailio/kamailio.sqlite
    exclusive_domains: [old.example.net]
"""

RETURN = r"""
added:
  description: Subscribers added (or that would be added), as C(user@domain).
  returned: always
  type: list
  elements: str
  sample: ["4930123456@sip.example.net"]
updated:
  description: Subscribers whose credentials changed (or would change).
  returned: always
  type: list
  elements: str
  sample: []
removed:
  description: Subscribers removed (or that would be removed).
  returned: always
  type: list
  elements: str
  sample: []
counts:
  description: Number of subscribers per outcome.
  returned: always
  type: dict
  sample: {"added": 1, "updated": 0, "removed": 0, "unchanged": 1}
"""

# Ansible wants imports after the documentation (validate-modules: import-before-documentation).
import os  # noqa: E402

from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (  # noqa: E402
    DATABASE_REQUIRED_IF,
    DatabaseError,
    connect_with,
    database_argument_spec,
)
from ansible_collections.sipwave.platform.plugins.module_utils.quiet_module import (  # noqa: E402
    QuietBulkModule,
)
from ansible_collections.sipwave.platform.plugins.module_utils.subscriber_db import (  # noqa: E402
    Plan,
    SubscriberError,
    apply,
    desired_from_entries,
    label,
    plan,
    read_subscribers,
)


def _diff(current: dict, todo: Plan) -> dict:
    updated = set(todo.update)
    removed = set(todo.remove)
    after_keys = sorted((current.keys() - removed) | set(todo.add))
    after = [
        label(key) + (" (credentials changed)" if key in updated else "") for key in after_keys
    ]
    return {
        "before": "".join(f"{label(key)}\n" for key in sorted(current)),
        "after": "".join(f"{line}\n" for line in after),
    }


def main() -> None:
    module = QuietBulkModule(
        argument_spec={
            **database_argument_spec(),
            "subscribers": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "no_log": False,  # secrets are masked by QuietBulkModule, see there why
                "options": {
                    "username": {"type": "str", "required": True},
                    "domain": {"type": "str", "required": True},
                    "password": {"type": "str", "no_log": False},
                    "ha1": {"type": "str", "no_log": False},
                    "ha1b": {"type": "str", "no_log": False},
                },
            },
            "exclusive": {"type": "bool", "default": False},
            "exclusive_domains": {"type": "list", "elements": "str", "default": []},
        },
        required_if=list(DATABASE_REQUIRED_IF),
        supports_check_mode=True,
        summarised=("subscribers",),
    )
    params = module.params
    try:
        desired = desired_from_entries(params["subscribers"])
    except SubscriberError as exc:
        module.fail_json(msg=str(exc))

    listed_domains = {domain for _username, domain in desired}
    exclusive_domains = set(params["exclusive_domains"])
    if params["exclusive"]:
        exclusive_domains |= listed_domains

    missing_sqlite = params["backend"] == "sqlite" and not os.path.exists(params["database"])
    if module.check_mode and missing_sqlite:
        # The task that creates the database did not run in check mode either.
        current = {}
        todo = plan(current, desired, exclusive_domains)
    else:
        try:
            conn = connect_with(params)
        except DatabaseError as exc:
            module.fail_json(msg=str(exc))
        try:
            current = read_subscribers(conn, listed_domains | exclusive_domains)
            todo = plan(current, desired, exclusive_domains)
            if todo.changed and not module.check_mode:
                apply(conn, todo, desired)
        except conn.Error as exc:
            module.fail_json(msg=f"{params['backend']} database error: {exc}")
        finally:
            conn.close()

    result = {
        "changed": todo.changed,
        "added": [label(key) for key in todo.add],
        "updated": [label(key) for key in todo.update],
        "removed": [label(key) for key in todo.remove],
        "counts": {
            "added": len(todo.add),
            "updated": len(todo.update),
            "removed": len(todo.remove),
            "unchanged": len(desired) - len(todo.add) - len(todo.update),
        },
    }
    if module._diff:
        result["diff"] = _diff(current, todo)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
