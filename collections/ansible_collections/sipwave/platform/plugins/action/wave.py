# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of sipwave.platform.wave: read the export, hash, run the module, report.

Plaintext passwords exist only here, on the controller, while the export is read: every HA1
(the legacy identity's and the phase-2 identity's) is computed before the module is called,
and the module receives hashes only. The report and the task result never hold a secret.
"""

from __future__ import annotations

from collections import Counter
from datetime import date

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.sipwave.platform.plugins.module_utils.bulk import without_cycle_collection
from ansible_collections.sipwave.platform.plugins.module_utils.consent_file import read_consent
from ansible_collections.sipwave.platform.plugins.module_utils.credentials import (
    CredentialError,
    generated_password,
    ha1,
    ha1b,
)
from ansible_collections.sipwave.platform.plugins.module_utils.e164 import (
    NumberError,
    plan_from_dict,
)
from ansible_collections.sipwave.platform.plugins.module_utils.legacy_export import (
    Account,
    Export,
    ExportError,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.model import (
    MigrationError,
    new_run_id,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.outcomes import (
    account_rows,
    outcomes_of,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.window import (
    check_move_now,
    decision_window,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave_report import add_host_result
from ansible_collections.sipwave.platform.plugins.plugin_utils.controller import (
    read_export_once,
    selected_logins,
)
from ansible_collections.sipwave.platform.plugins.plugin_utils.remote_file import transfer_json

# Arguments only the controller side uses; the module never sees them.
CONTROLLER_ARGS = ("export", "number_plan", "site_secret", "report_dir", "consent_file",
                   "dialin_hosts")  # fmt: skip
MAX_SHOWN_PROBLEMS = 200


def _wave_definition(wave) -> dict:
    if isinstance(wave, dict):
        if not wave.get("name"):
            raise AnsibleActionFail("the wave has no name")
        return dict(wave)
    if isinstance(wave, str) and wave:
        return {"name": wave}
    raise AnsibleActionFail("wave must be a wave of sipwave_waves or a wave name")


def module_account(account: Account, new_login: str, new_domain: str, site_secret: str) -> list:
    """What the module gets for one account, as a row of ACCOUNT_COLUMNS (the accounts file's
    form): hashes, never the password."""
    legacy = (account.login, account.domain)
    password = account.password
    generated = not password
    if generated:
        if not site_secret:
            raise AnsibleActionFail(
                "site_secret is needed: some accounts only have an HA1 and get a generated "
                "phase-2 password"
            )
        new_password = generated_password(site_secret, account.login)
    else:
        new_password = password
    return [
        account.login,
        account.domain,
        account.department,
        account.balance,
        list(account.numbers),
        list(account.dialin_numbers),
        account.ha1 or ha1(*legacy, password),
        "" if account.ha1 and not password else ha1b(*legacy, password),
        ha1(new_login, new_domain, new_password),
        ha1b(new_login, new_domain, new_password),
        generated,
    ]


def limited(selected: list[str], limit_to, wave: str) -> list[str]:
    """The wave's logins, only those of ``limit_to`` when given (an account moved on its own,
    e.g. at once on its consent). A login the wave does not take is refused: moving it would
    apply another wave's decision under this wave's name."""
    if limit_to is None:
        return selected
    if not isinstance(limit_to, list) or not limit_to:
        raise AnsibleActionFail("limit_to must be a non-empty list of logins")
    wanted = [str(login) for login in limit_to]
    outside = sorted(set(wanted) - set(selected))
    if outside:
        raise AnsibleActionFail(f"wave {wave} does not take {', '.join(outside)}")
    return [login for login in selected if login in wanted]


def _add_addresses(outcomes: list[dict], export: Export) -> None:
    """Whom the notifications write to, for each outcome; never anything secret."""
    for outcome in outcomes:
        account = export.accounts.get(outcome["login"])
        if account is not None:
            outcome["email"] = account.email
            outcome["display_name"] = account.display_name


class ActionModule(ActionBase):
    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        controller = {name: args.pop(name, None) for name in CONTROLLER_ARGS}
        if not isinstance(controller["dialin_hosts"] or [], list):
            raise AnsibleActionFail("dialin_hosts must be a list of PBX host names")
        operation = args.get("operation", "apply")
        # One run id given to every host (the wave playbooks name the run once) makes one
        # report for the run; without it each host's run is reported on its own.
        self._shared_run_id = "run_id" in args
        args.setdefault("run_id", new_run_id() + "-" + str(task_vars.get("inventory_hostname")))
        args.setdefault("today", date.today().isoformat())
        export = None
        wave = None
        self._care_actions = []
        if operation in ("apply", "rollback"):
            wave = _wave_definition(args.get("wave"))
            args["wave"] = wave["name"]
            args.setdefault("phase", int(wave.get("phase", 1)))
        try:
            if wave is not None:
                self._decision_window(args, wave, operation)
            if operation == "apply" and controller["export"]:
                with without_cycle_collection():
                    export = self._prepare_wave(args, wave, controller)
            if operation == "consent" and controller["consent_file"]:
                args["consent"] = [
                    {"login": c.login, "decision": c.decision, "source": c.source}
                    for c in read_consent(controller["consent_file"])
                ]
        except (ExportError, CredentialError, NumberError, MigrationError) as exc:
            raise AnsibleActionFail(str(exc)) from exc
        accounts = args.pop("accounts", None)
        try:
            if accounts is not None:
                args["accounts_file"] = transfer_json(self, "accounts.json", account_rows(accounts))
            module_result = self._execute_module(
                module_name="sipwave.platform.wave", module_args=args, task_vars=task_vars
            )
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        result.update(module_result)
        if args.get("limit_to"):
            result["limit_to"] = [str(login) for login in args["limit_to"]]
        problems = self._add_export(result, export) if export is not None else None
        # A run that got as far as counting (also one whose reconciliation failed) is
        # reported; check mode writes nothing, not even a report.
        if "counts" in result and not self._task.check_mode and controller["report_dir"]:
            # The task result keeps the outcomes packed in one string (account_outcomes):
            # 100,000 dictionaries in a registered result cost Ansible more than a second to
            # carry from the worker to the playbook. The report lists them, every bad row of
            # the export, and whom the notifications write to.
            outcomes = outcomes_of(result)
            report = {**result, "accounts": outcomes}
            if export is not None:
                _add_addresses(outcomes, export)
                report["bad_rows"] = problems
                report["dropped_parts"] = self._dropped_parts(export)
                report["actions_for_customer_care"] = self._care_actions
            result["report"] = self._write_report(
                report, controller["report_dir"], task_vars, controller["dialin_hosts"] or []
            )
        return result

    @staticmethod
    def _decision_window(args: dict, wave: dict, operation: str) -> None:
        """The wave's decision window into the module's arguments; a run of some accounts
        in phase 2 outside it is refused."""
        decision_window(wave)
        if wave.get("decide_by"):
            args.setdefault("decide_by", str(wave["decide_by"]))
        if wave.get("undecided"):
            args["undecided_policy"] = wave["undecided"]
        if operation == "apply" and args.get("limit_to") and int(args["phase"]) == 2:
            try:
                today = date.fromisoformat(str(args["today"]))
            except ValueError:
                message = f"today {args['today']!r} is not a date (YYYY-MM-DD)"
                raise MigrationError(message) from None
            check_move_now(wave, today)

    def _prepare_wave(self, args: dict, wave: dict, controller: dict) -> Export:
        if not controller["number_plan"]:
            raise AnsibleActionFail("number_plan is required with export")
        export = read_export_once(controller["export"], plan_from_dict(controller["number_plan"]))
        new_domain = args.get("new_domain")
        prefix = args.get("login_prefix", "tnf")
        accounts, rejected = [], []
        selected = limited(selected_logins(wave, export), args.get("limit_to"), wave["name"])
        for login in selected:
            account = export.accounts.get(login)
            if account is not None:
                accounts.append(
                    module_account(account, f"{prefix}{login}", new_domain,
                                   controller["site_secret"] or "")
                )  # fmt: skip
                continue
            bad = export.bad_rows_of(login)
            reason = (
                "; ".join(str(p) for row in bad for p in row.problems)
                if bad
                else f"{login} is not in the export {export.path}"
            )
            rejected.append({"login": login, "reason": reason})
        args["accounts"] = accounts
        args["rejected"] = rejected
        self._care_actions = export.care_actions(selected)
        return export

    def _dropped_parts(self, export: Export) -> list[str]:
        """The parts dropped from this wave's accounts, as ``file:line: reason``."""
        return [str(p) for p in export.dropped_parts(a["login"] for a in self._care_actions)]

    def _add_export(self, result: dict, export: Export) -> list[str]:
        """The export's summary, its first bad rows and dropped parts, and what the wave's
        accounts leave to customer care into the task result; returns every bad row.

        A dropped part is not carried: the wave's ``not_carried`` counts them, apart from
        the accounts' outcomes, so that no account missing a part is counted as done."""
        problems = [str(p) for p in export.problems]
        result["export"] = export.summary()
        for name, listed in (
            ("bad_rows", problems),
            ("dropped_parts", self._dropped_parts(export)),
        ):
            result[name] = listed[:MAX_SHOWN_PROBLEMS]
            if len(listed) > MAX_SHOWN_PROBLEMS:
                result[name].append(f"... and {len(listed) - MAX_SHOWN_PROBLEMS} more")
        actions = self._care_actions
        dropped = [part for action in actions for part in action.get("dropped", [])]
        result["not_carried"] = {
            "accounts": sum(1 for action in actions if action.get("dropped")),
            "parts": len(dropped),
            "per_column": dict(sorted(Counter(part["column"] for part in dropped).items())),
            "rejected_accounts": sum(1 for action in actions if not action.get("dropped")),
            "customer_care_actions": len(actions),
        }
        return problems

    def _write_report(
        self, result: dict, report_dir: str, task_vars: dict, dialin_hosts: list[str]
    ) -> str:
        """Add this host's result to the run's one report (see wave_report)."""
        host = str(task_vars.get("inventory_hostname"))
        expected = [host]
        if self._shared_run_id:
            expected = [str(h) for h in task_vars.get("ansible_play_hosts_all") or expected]
        return add_host_result(report_dir, host, result, expected, [str(h) for h in dialin_hosts])
