#!/usr/bin/python
# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: wave_dialin
short_description: A wave's live accounts as dial-in rows, and their arrival on the PBXs
version_added: 0.3.0
description:
  - Runs on the controller only (an action plugin); it never connects to a host.
  - O(operation=plan) reads the legacy export and the wave run's outcome per account and
    returns the entries that M(sipwave.platform.dialin_access) keeps under the source
    C(wave:<name>). An account in phase 1, consent pending or phase 2 keeps dial-in; a
    closed, rejected or rolled-back account has none (after a rollback the list is empty).
    Each entry has the login as id, the export's department (O(default_department) when
    empty), the account's first number as the number presented on calls out, and the
    export's authorised caller numbers. The export has no PIN column, so no entry has a PIN.
  - An account the wave keeps as it is (its export row turned bad after it was migrated) is
    returned in C(keep), so that the PBX keeps its rows.
  - O(operation=record) takes each PBX host's dialin_access result, writes the C(dialin)
    section (expected, handed to the PBX, present per host, conflicts, ok) into the run's
    report(s) and folds it into the report's reconciliation; it fails when a dial-in number
    did not arrive on a PBX.
  - Neither operation returns or writes a password, HA1 or PIN.
author:
  - sipwave developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: O(operation=record) writes no report and does not fail in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  operation:
    description: Map the wave (C(plan)) or record what the PBXs hold (C(record)).
    type: str
    choices: [plan, record]
    default: plan
  wave:
    description: The wave, a name or a dictionary of C(sipwave_waves). For O(operation=plan).
    type: raw
  runs:
    description:
      - Results of the wave run (registered results of M(sipwave.platform.wave)); the first
        one of O(wave) gives the outcome per account, and all of them the reports to update.
      - When none is of O(wave), the wave's newest report in O(report_dir) is used.
    type: list
    elements: dict
    default: []
  report_dir:
    description: Controller directory of the wave reports.
    type: path
  export:
    description: Controller path of the legacy export (CSV); needed after an apply.
    type: path
  number_plan:
    description: 'Country plan for the export''s numbers, for example C({"country_code": "48"}).'
    type: dict
  default_department:
    description: Department of an account whose export row has none.
    type: str
    default: unassigned
  max_calls:
    description: Concurrent dial-in calls allowed per wave account.
    type: int
    default: 1
  limits:
    description:
      - Per legacy login, what its account may do without a PIN (the export has no PIN, so
        no wave account has one) beyond the PBX's site defaults, national numbers only and
        its minutes per day; C(allowed_prefixes) (E.164) and C(daily_minutes), as in
        M(sipwave.platform.dialin_access). Logins that are not live in the wave are ignored.
    type: dict
    default: {}
  plan:
    description: For O(operation=record), the result of O(operation=plan).
    type: dict
  results:
    description: For O(operation=record), each PBX host's dialin_access result by host name.
    type: dict
"""

EXAMPLES = r"""
- name: Map the wave's live accounts to dial-in rows
  sipwave.platform.wave_dialin:
    wave: wave1
    report_dir: "{{ playbook_dir }}/../reports"
    export: "{{ sipwave_legacy_export }}"
    number_plan: "{{ sipwave_number_plan }}"
  run_once: true
  register: wave_dialin_plan

- name: Hand them to the PBX
  sipwave.platform.dialin_access:
    database: /var/lib/asterisk/sipwave/dialin.sqlite
    number_plan: "{{ sipwave_number_plan }}"
    source: "{{ wave_dialin_plan.source }}"
    accounts: "{{ wave_dialin_plan.accounts }}"
    keep_accounts: "{{ wave_dialin_plan.keep }}"
    exclusive: true
    on_conflict: keep
  register: wave_dialin_applied

- name: Record what arrived in the wave's report
  sipwave.platform.wave_dialin:
    operation: record
    plan: "{{ wave_dialin_plan }}"
    results: >-
      {{ dict(ansible_play_hosts
      | zip(ansible_play_hosts | map('extract', hostvars, 'wave_dialin_applied'))) }}
  run_once: true
"""

RETURN = r"""
source:
  description: The dial-in source of the wave.
  returned: operation is plan
  type: str
  sample: wave:wave1
accounts:
  description:
    - The dialin_access entries (C(id), C(department), C(number), C(dialin_numbers),
      C(max_calls), and C(allowed_prefixes) and C(daily_minutes) from O(limits)).
  returned: operation is plan
  type: list
  elements: dict
keep:
  description: Account ids whose rows the PBX keeps as they are.
  returned: operation is plan
  type: list
  elements: str
expected:
  description: Accounts with dial-in numbers among the wave's live accounts, and their numbers.
  returned: operation is plan
  type: dict
  sample: {"accounts": 84, "numbers": 126}
handed_to_pbx:
  description: What the entries hand to each PBX (less than expected when some cannot be mapped).
  returned: operation is plan
  type: dict
  sample: {"accounts": 84, "numbers": 126}
problems:
  description: Accounts whose dial-in numbers cannot be handed over, and why.
  returned: operation is plan
  type: list
  elements: str
reports:
  description: The reports the section goes (or went) into.
  returned: always
  type: list
  elements: str
dialin:
  description: The report's C(dialin) section.
  returned: operation is record
  type: dict
  sample:
    source: wave:wave1
    expected: {"accounts": 84, "numbers": 126}
    handed_to_pbx: {"accounts": 84, "numbers": 126}
    hosts: {"pbx1": {"present": {"accounts": 84, "numbers": 126}, "ok": true}}
    ok: true
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "operation": {"type": "str", "default": "plan", "choices": ["plan", "record"]},
            "wave": {"type": "raw"},
            "runs": {"type": "list", "elements": "dict", "default": []},
            "report_dir": {"type": "path"},
            "export": {"type": "path"},
            "number_plan": {"type": "dict"},
            "default_department": {"type": "str", "default": "unassigned"},
            "max_calls": {"type": "int", "default": 1},
            "limits": {"type": "dict", "default": {}},
            "plan": {"type": "dict"},
            "results": {"type": "dict"},
        },
        supports_check_mode=True,
    )
    module.fail_json(msg="sipwave.platform.wave_dialin runs on the controller (action plugin)")


if __name__ == "__main__":
    main()
