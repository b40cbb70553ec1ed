# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of sipwave.platform.notify: who gets a message, with which values.

Recipients come from the legacy export (a wave's notice and reminder, before anything is
migrated) and/or from a wave run's per-account outcomes (phase-2 confirmation, closure).
Generated phase-2 passwords and the secret codes of issued migration codes are derived here,
from the site secret, exactly as the wave engine and the donor side derived them; they only
travel to the module inside ``messages[].secrets``.
"""

from __future__ import annotations

from datetime import date

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.sipwave.platform.plugins.module_utils.credentials import (
    CredentialError,
    generated_password,
    port_secret,
    staff_password,
)
from ansible_collections.sipwave.platform.plugins.module_utils.e164 import (
    NumberError,
    plan_from_dict,
)
from ansible_collections.sipwave.platform.plugins.module_utils.legacy_export import (
    ExportError,
)
from ansible_collections.sipwave.platform.plugins.module_utils.message_rules import (
    DECISION_REMINDER,
    MessageRuleError,
    check_decision_reminder,
    check_schedule,
    operators,
    sender_for,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.model import MigrationError
from ansible_collections.sipwave.platform.plugins.module_utils.wave.window import decision_window
from ansible_collections.sipwave.platform.plugins.plugin_utils.controller import (
    read_export_once,
    selected_logins,
)

# Arguments only the controller side uses; the module never sees them.
CONTROLLER_ARGS = ("export", "number_plan", "accounts", "site_secret", "operators", "consented",
                   "today", "days_before", "decided", "only")  # fmt: skip
# Fields of a wave outcome that address the message rather than fill the template.
ADDRESS_FIELDS = ("login", "email", "display_name")


def export_values(account) -> dict:
    return {
        "domain": account.domain,
        "numbers": list(account.numbers),
        "department": account.department,
        "balance": account.balance,
    }


def messages_from_export(export, wave: dict) -> list[dict]:
    """A wave's accounts as the export has them (before anything is migrated)."""
    messages = []
    for login in selected_logins(wave, export):
        account = export.accounts.get(login)
        if account is None:
            continue  # a bad row: the wave report names it, there is no one to write to
        messages.append(
            {
                "login": account.login,
                "email": account.email,
                "display_name": account.display_name,
                "values": export_values(account),
            }
        )
    return messages


def messages_from_outcomes(outcomes: list[dict], export=None) -> list[dict]:
    """Accounts as a wave run left them; the export fills in what the run does not say."""
    messages = []
    for outcome in outcomes:
        login = str(outcome["login"])
        account = export.accounts.get(login) if export is not None else None
        values = export_values(account) if account is not None else {}
        values.update({k: v for k, v in outcome.items() if k not in ADDRESS_FIELDS})
        if values.get("state") == "closed":
            # Every report gives a closed account the refund recorded at its closure; a
            # report written before reports did still owes the customer the balance.
            values.setdefault("refund", values.get("balance"))
        messages.append(
            {
                "login": login,
                "email": outcome.get("email") or (account.email if account else ""),
                "display_name": outcome.get("display_name")
                or (account.display_name if account else ""),
                "values": values,
            }
        )
    return messages


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        controller = {name: args.pop(name, None) for name in CONTROLLER_ARGS}
        wave = args.get("wave")
        if isinstance(wave, dict):
            args["wave"] = wave.get("name")
            context = dict(args.get("context") or {})
            context.setdefault("date", str(wave.get("date", "")))
            context.setdefault("decide_by", str(wave.get("decide_by", "")))
            args["context"] = context
        messages = list(args.get("messages") or [])
        try:
            self._check_schedule(args["notification"], wave, controller)
            export = None
            if controller["export"]:
                if not controller["number_plan"]:
                    raise AnsibleActionFail("export needs number_plan")
                export = read_export_once(
                    controller["export"], plan_from_dict(controller["number_plan"])
                )
            if controller["accounts"] is not None:
                messages += messages_from_outcomes(controller["accounts"], export)
            elif export is not None:
                if not isinstance(wave, dict):
                    raise AnsibleActionFail("export without accounts needs wave (a wave entry)")
                messages += messages_from_export(export, wave)
            for message in messages:
                values = message.setdefault("values", {})
                if values.get("password_generated") and controller["site_secret"]:
                    secrets = message.setdefault("secrets", {})
                    secrets["new_password"] = generated_password(
                        controller["site_secret"], message["login"]
                    )
                # A staff member's settings mail (playbooks/user_add.yml): their SIP password.
                if values.get("staff_password") and controller["site_secret"]:
                    secrets = message.setdefault("secrets", {})
                    secrets["password"] = staff_password(
                        controller["site_secret"], message["login"]
                    )
                # A migration code sipwave issued: its secret code, shown once in this mail.
                if values.get("issued_code") and controller["site_secret"]:
                    secrets = message.setdefault("secrets", {})
                    secrets["secret_code"] = port_secret(
                        controller["site_secret"], str(values["issued_code"])
                    )
            if args["notification"] == DECISION_REMINDER:
                # Only to whom has not decided yet (decided: every recorded decision).
                decided = {str(login) for login in controller["decided"] or []}
                messages = [m for m in messages if str(m["login"]) not in decided]
            if controller["only"] is not None:
                messages = self._only(messages, controller["only"], args)
            if controller["operators"] is not None:
                senders = operators(controller["operators"])
                consented = {str(login) for login in controller["consented"] or []}
                for message in messages:
                    message["sender"] = sender_for(str(message["login"]), consented, senders)
        except (ExportError, CredentialError, NumberError, MessageRuleError) as exc:
            raise AnsibleActionFail(str(exc)) from exc
        result["no_address"] = sorted(m["login"] for m in messages if not m.get("email"))
        args["messages"] = [m for m in messages if m.get("email")]
        result.update(
            self._execute_module(
                module_name="sipwave.platform.notify", module_args=args, task_vars=task_vars
            )
        )
        return result

    @staticmethod
    def _only(messages: list[dict], only, args: dict) -> list[dict]:
        """The messages to the logins of ``only``; a login that would get none is refused
        (a rejected row, another wave's account, or not in the state the mail is for)."""
        wanted = [str(login) for login in only]
        found = [m for m in messages if str(m["login"]) in wanted]
        missing = sorted(set(wanted) - {str(m["login"]) for m in found})
        if missing:
            raise MessageRuleError(
                f"{', '.join(missing)} would get no {args['notification']} of wave "
                f"{args['wave']}: not among its recipients (a rejected row, another wave's "
                "account, or not in the state this mail is for)"
            )
        return found

    @staticmethod
    def _check_schedule(notification: str, wave, controller: dict) -> None:
        """A notice or reminder only in its window before the wave date, the decision
        reminder only in the last days of the decision window (message_rules)."""
        if controller["today"] is None or not isinstance(wave, dict):
            return
        try:
            # The wave's days as the engine reads them (wave/window.py owns the rules).
            wave_date, decide_by = decision_window(wave)
            today = date.fromisoformat(str(controller["today"]))
        except MigrationError as exc:
            raise AnsibleActionFail(str(exc)) from exc
        except ValueError as exc:
            raise AnsibleActionFail(f"wave {wave.get('name')}: today: {exc}") from exc
        if wave_date is None:
            raise AnsibleActionFail(f"wave {wave.get('name')} has no date")
        days_before = controller["days_before"] or {}
        if notification == DECISION_REMINDER:
            check_decision_reminder(str(wave.get("name")), decide_by, today, days_before)
            return
        check_schedule(notification, str(wave.get("name")), wave_date, today, days_before)
