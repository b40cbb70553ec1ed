#!/usr/bin/python
# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: wave
short_description: Apply, roll back or record consent for a migration wave in one call
version_added: 0.2.0
description:
  - O(operation=apply) moves a whole wave of legacy accounts in one transaction on the
    Kamailio database. Phase 1 serves the legacy identity (same login, domain and password,
    stored as HA1) with the account's numbers as aliases. Phase 2 follows each account's
    recorded consent - C(migrate) gives the prefixed login on the new domain (the legacy
    identity keeps working until the grace period ends), C(close) removes the account's
    subscriber rows and keeps or releases its numbers, and without a decision the account
    stays in C(consent_pending).
  - Per-account state, numbers and an append-only audit log are kept in engine-owned tables;
    before the first change of a wave the rows it touches are saved once as the wave's
    snapshot, which O(operation=rollback) restores exactly.
  - O(operation=consent) records customer decisions (C(migrate) or C(close)).
  - Every run reconciles the result against the input (every account in one state, every
    number, dial-in number and alias present) and returns the counts.
  - The action plugin of the same name runs on the controller first. Given O(export) it reads
    and validates the legacy export, selects the wave's accounts and computes every HA1 there,
    so plaintext passwords never reach the target host. The module itself only receives HA1
    hashes; neither hashes nor passwords appear in its result, diff, messages or log.
  - A row with only a bad dial-in number or device migrates without it (RV(not_carried)).
author:
  - sipwave developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - sipwave.platform.kamailio_db
attributes:
  check_mode:
    support: full
    details:
      - Plans the wave and reconciles the planned state without writing anything.
      - A missing SQLite database file counts as an empty database.
  diff_mode:
    support: full
    details: One line per changed account (state, identity, numbers); never a secret.
  platform:
    platforms: posix
requirements:
  - python3-psycopg2 on the target host for O(backend=postgres).
options:
  operation:
    description: What to do.
    type: str
    choices: [apply, rollback, consent]
    default: apply
  wave:
    description:
      - The wave. On the controller a dictionary from C(sipwave_waves) (C(name), C(date),
        C(phase), and C(accounts) or C(select=csv-wave-column)); the module receives its name.
      - Required for O(operation=apply) and O(operation=rollback).
    type: raw
  phase:
    description: Phase to apply; the action plugin takes it from the wave when omitted.
    type: int
    choices: [1, 2]
    default: 1
  export:
    description:
      - Controller path of the legacy export (CSV). Read by the action plugin, which fills
        O(accounts) and O(rejected).
    type: path
  number_plan:
    description: 'Country plan for the export''s numbers, for example C({"country_code": "48"}).'
    type: dict
  site_secret:
    description:
      - Secret from which phase-2 passwords of HA1-only accounts are derived (controller only).
    type: str
  report_dir:
    description: Controller directory for the JSON report (C(<wave>-<run_id>.json)).
    type: path
  dialin_hosts:
    description:
      - The PBX hosts whose dial-in result (M(sipwave.platform.wave_dialin), O(operation=record))
        the run's report must hold before it is C(complete); empty when the run has no PBX.
      - Controller only; written into the report as C(reconciliation.dialin_hosts_expected).
    type: list
    elements: str
    default: []
  accounts_file:
    description:
      - Target path of a JSON list of the wave's good accounts (C(login), C(domain), hashes...),
        written by the action plugin into the task's temporary directory; a file because
        validating a 100,000-entry list argument costs more than the wave itself.
    type: path
  limit_to:
    description:
      - Only these logins of the wave (each must be in it). For O(operation=apply) the action
        plugin selects them from the export; O(operation=rollback) restores only them from the
        wave's snapshot, leaving its other accounts as they are.
    type: list
    elements: str
  rejected:
    description: Selected logins whose export rows are bad, each with C(login) and C(reason).
    type: list
    elements: dict
    default: []
  consent:
    description: Decisions for O(operation=consent), each with C(login), C(decision), C(source).
    type: list
    elements: dict
    default: []
  consent_file:
    description: Controller path of a consent CSV (C(login,decision)), read by the action plugin.
    type: path
  new_domain:
    description: SIP domain of the new platform (phase-2 identities).
    type: str
    required: true
  login_prefix:
    description: Prefix of phase-2 logins.
    type: str
    default: tnf
  grace_days:
    description: Days during which the legacy identity still works after phase 2.
    type: int
    default: 14
  closure_numbers:
    description:
      - What happens to the numbers of an account this run closes.
      - An account closed earlier keeps the decision recorded at its closure; where it differs
        from this setting the run changes nothing there, warns and names the accounts in
        C(reconciliation.closure_numbers_conflicts) (releasing a number kept for porting
        cannot be undone).
    type: str
    choices: [kept_for_porting, released]
    default: kept_for_porting
  temporary_numbers:
    description:
      - Pools of temporary numbers, each with C(area) (an E.164 prefix, e.g. C(+4822)), C(first)
        and C(last) (E.164 numbers of one length in that area), optional C(carrier); none if empty.
      - A served account with a C(legacy) number gets the lowest free number of its first
        number's area (longest prefix), keeps it, and gives it back when it closes or has no
        C(legacy) number left. No free number is reported per account (C(temporary_missing)).
    type: list
    elements: dict
    default: []
  carriers:
    description: The kamailio_carriers names; a pool's C(carrier) must be one of them.
    type: list
  sites:
    description: kamailio_sites (C(name), C(areas)), for the inventory's C(site) column.
    type: list
  temporary_quarantine_days:
    description: Days a returned temporary number rests before another account gets it.
    type: int
    default: 30
  force_after_cutover:
    description:
      - For O(operation=rollback), why accounts past their cutover (module C(cutover)) are
        rolled back (into their audit rows); without it such a rollback is refused.
    type: str
  decide_by:
    description:
      - The last day (ISO date) of the wave's decision window; the controller takes it from
        the wave's C(decide_by). Without it the window never ends.
      - After it, a phase-2 run applies O(undecided_policy) to the accounts without a recorded
        decision; a run of some accounts (O(limit_to)) in phase 2 is refused outside the
        window by the action plugin.
    type: str
  undecided_policy:
    description:
      - What a phase-2 run after O(decide_by) does with an account that never decided.
        V(stay) keeps it on its legacy identity for good (state phase1); V(close) closes it
        and records its refund, as a customer's close decision does. The wave's
        C(undecided) overrides it.
    type: str
    default: stay
    choices: [stay, close]
  today:
    description: The date the run acts on (ISO); the controller's date when omitted.
    type: str
  run_id:
    description: Identifier of this run in the audit log and report; generated when omitted.
    type: str
"""

EXAMPLES = r"""
- name: Apply wave 1 (phase taken from the wave)
  sipwave.platform.wave:
    wave: "{{ sipwave_waves | selectattr('name', '==', 'wave1') | first }}"
    export: "{{ sipwave_legacy_export }}"
    number_plan: "{{ sipwave_number_plan }}"
    site_secret: "{{ sipwave_site_secret }}"
    new_domain: sip.sipwave.test
    database: /var/lib/kamailio/sipwave.sqlite
    report_dir: "{{ playbook_dir }}/../reports"

- name: Record that a customer agreed to phase 2
  sipwave.platform.wave:
    operation: consent
    consent: [{login: "481234001", decision: migrate, source: support ticket 42}]
    new_domain: sip.sipwave.test
    database: /var/lib/kamailio/sipwave.sqlite

- name: Put wave 1 back as it was
  sipwave.platform.wave:
    operation: rollback
    wave: wave1
    new_domain: sip.sipwave.test
    database: /var/lib/kamailio/sipwave.sqlite
"""

RETURN = r"""
run_id:
  description: Identifier of the run (audit rows, report name).
  returned: always
  type: str
counts:
  description: Accounts per outcome of this run and per state after it.
  returned: always
  type: dict
  sample: {"outcomes": {"phase1": 480, "rejected": 20}, "states": {"phase1": 480}}
account_outcomes:
  description:
    - One entry per input account, packed in one string (the JSON text C([columns, rows]),
      zlib-compressed and base64-encoded) with the columns
      C(login), C(action), C(state), C(identity), C(grace_until), C(refund), C(refund_run),
      C(closure_numbers), C(password_generated), C(reason), C(temporary_number),
      C(temporary_returned), C(temporary_missing), C(refund_reversed). Never a secret.
    - A rollback that reopens a closed account takes back its refund (C(refund_reversed)).
    - Every closed account has its C(refund) and C(refund_run), the run that recorded the
      refund (this run, or the earlier run that closed it, from the audit log), and
      C(closure_numbers), the state of its numbers.
    - The task result keeps this string (100,000 dictionaries in a registered result take
      Ansible seconds to carry); the filter C(sipwave.platform.wave_outcomes) turns it into a
      list of dictionaries, one per account, without the null columns. The run's report holds
      the same list under C(accounts), with C(email) and C(display_name) from the export for
      notifications.
  returned: when operation is apply or rollback
  type: str
reconciliation:
  description: Result of checking the database against the input after the run.
  returned: when operation is apply or rollback
  type: dict
  sample: {"ok": true, "accounts": 500, "numbers_expected": 700, "numbers_present": 700}
refunds:
  description:
    - Balances to refund to accounts closed by this run, and their total. A closure of an
      earlier run is not refunded again (see C(refund_run) of the account outcomes).
  returned: when operation is apply
  type: dict
  sample: {"total": "12.50", "accounts": [{"login": "481234001", "amount": "12.50"}]}
routing_generation:
  description:
    - Generation of the routing data in the database after the run. Every run that changes
      routing data counts it up in the same transaction; Kamailio's routing cache holds the
      generation it loaded (key C(g:generation)), so a proxy whose cache is older than its
      database is found and reloaded even after a run killed before its reload.
  returned: when operation is apply or rollback
  type: int
  sample: 12
export:
  description: The export's counts (rows, good, bad and partial rows, reasons).
  returned: when operation is apply with an export
  type: dict
not_carried:
  description: >-
    Dropped parts (accounts, parts, per column) counted apart from the outcomes, rejected
    accounts and action items for customer care; C(bad_rows) and C(dropped_parts) list the
    first 200 of each as C(file:line - reason).
  returned: when operation is apply with an export
  type: dict
consent:
  description: Decisions that changed, as C(login), C(before), C(after).
  returned: when operation is consent
  type: list
  elements: dict
"""

# Ansible wants imports after the documentation (validate-modules: import-before-documentation).
from datetime import date  # noqa: E402

from ansible_collections.sipwave.platform.plugins.module_utils.bulk import without_cycle_collection  # noqa: E402
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (  # noqa: E402
    DATABASE_REQUIRED_IF,
    DatabaseError,
    database_argument_spec,
)
from ansible_collections.sipwave.platform.plugins.module_utils.quiet_module import (  # noqa: E402
    QuietBulkModule,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.arguments import (  # noqa: E402
    WAVE_ARGUMENTS,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.consent import (  # noqa: E402
    consent_result,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.model import (  # noqa: E402
    MigrationError,
    new_run_id,
    settings_from_params,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.outcomes import (  # noqa: E402
    counts,
    diff,
    load_accounts,
    outcome_rows,
    pack,
    wave_accounts,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.plan import (  # noqa: E402
    closure_conflicts_message,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.rollback import (  # noqa: E402
    rollback_wave,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.run import (  # noqa: E402
    run_wave,
    total_refund,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.tables import (  # noqa: E402
    connect_or_empty,
)


def main() -> None:
    module = QuietBulkModule(
        argument_spec={**WAVE_ARGUMENTS, **database_argument_spec()},
        required_if=[
            *DATABASE_REQUIRED_IF,
            ("operation", "apply", ("wave",)),
            ("operation", "rollback", ("wave",)),
        ],
        supports_check_mode=True,
        summarised=("rejected", "consent"),
    )
    params = module.params
    run_id = params["run_id"] or new_run_id()
    try:
        today = date.fromisoformat(params["today"]) if params["today"] else date.today()
    except ValueError:
        module.fail_json(msg=f"today {params['today']!r} is not an ISO date (YYYY-MM-DD)")
    wave = params["wave"]
    wave_name = str(wave.get("name") if isinstance(wave, dict) else wave or "")
    try:
        settings = settings_from_params(params, wave_name, today, run_id)
    except MigrationError as exc:
        module.fail_json(msg=str(exc))
    try:
        conn = connect_or_empty(params, module.check_mode)
    except DatabaseError as exc:
        module.fail_json(msg=str(exc))
    result: dict = {"run_id": run_id, "operation": params["operation"], "wave": wave_name}
    try:
        if params["operation"] == "consent":
            result.update(consent_result(
                conn, params["consent"], run_id, module.check_mode, module._diff))  # fmt: skip
            module.exit_json(**result)
        if params["operation"] == "rollback":
            run = rollback_wave(conn, settings, module.check_mode, params["limit_to"])
        else:
            rejected = {str(r["login"]): str(r.get("reason") or "") for r in params["rejected"]}
            accounts = wave_accounts(load_accounts(params["accounts_file"]))
            run = run_wave(conn, accounts, rejected, settings, module.check_mode)
    except MigrationError as exc:
        module.fail_json(msg=str(exc), **result)
    except conn.Error as exc:
        module.fail_json(msg=f"{params['backend']} database error: {exc}", **result)
    finally:
        conn.close()
    outcomes = outcome_rows(run)
    result.update(
        changed=run.changed,
        phase=settings.phase,
        today=today.isoformat(),
        counts=counts(outcomes),
        # One string, not 100,000 dictionaries: AnsibleModule walks every value of a result
        # (remove_values), which took longer than the whole wave. The action plugin unpacks it.
        account_outcomes=pack(outcomes),
        reconciliation=run.reconciliation,
        snapshot_taken_for=run.snapshot_logins,
        routing_generation=run.routing_generation,
    )
    if params["operation"] == "apply":
        recorded_now = [p for p in run.plans if p.refund is not None and p.refund_run == run_id]
        result["refunds"] = {
            "total": total_refund(recorded_now),
            "accounts": [{"login": p.login, "amount": p.refund} for p in recorded_now],
        }
        conflicts = run.reconciliation.get("closure_numbers_conflicts")
        if conflicts:
            module.warn(closure_conflicts_message(conflicts))
    if module._diff:
        result["diff"] = diff(run)
    if not run.reconciliation["ok"] and not module.check_mode:
        module.fail_json(msg="reconciliation failed: " + "; ".join(
            run.reconciliation["problems"][:10]), **result)  # fmt: skip
    module.exit_json(**result)


if __name__ == "__main__":
    with without_cycle_collection():
        main()
