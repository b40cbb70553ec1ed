# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of sipwave.platform.account_info: the account's export row (never its
password or HA1) and the mails the sent-log holds for it, beside what the module reads."""

from __future__ import annotations

import json

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.sipwave.platform.plugins.module_utils.e164 import (
    NumberError,
    plan_from_dict,
)
from ansible_collections.sipwave.platform.plugins.module_utils.legacy_export import ExportError
from ansible_collections.sipwave.platform.plugins.plugin_utils.controller import read_export_once

CONTROLLER_ARGS = ("export", "number_plan", "sent_log")


def export_view(export, login: str) -> dict | None:
    account = export.accounts.get(login)
    if account is not None:
        return {
            "line": account.line, "display_name": account.display_name, "email": account.email,
            "numbers": list(account.numbers), "dialin_numbers": list(account.dialin_numbers),
            "devices": [{"vendor": d.vendor, "model": d.model, "mac": d.mac}
                        for d in account.devices],
            "dropped": [{"column": d.column, "item": d.item, "why": d.message}
                        for d in account.dropped],
        }  # fmt: skip
    rows = export.bad_rows_of(login)
    if rows:
        return {"rejected": [str(p) for row in rows for p in row.problems],
                "email": next((row.email for row in rows if row.email), "")}  # fmt: skip
    return None


def mails(path: str | None, login: str) -> list[dict]:
    if not path:
        return []
    try:
        with open(path, encoding="utf-8") as handle:
            entries = [json.loads(line) for line in handle if line.strip()]
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise AnsibleActionFail(f"cannot read the sent-log {path}: {exc}") from exc
    return [
        {name: entry.get(name) for name in ("sent_at", "notification", "wave", "sender", "email")}
        for entry in entries
        if entry.get("login") == login
    ]


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        controller = {name: args.pop(name, None) for name in CONTROLLER_ARGS}
        login = str(args.get("login") or "")
        result.update(
            self._execute_module(
                module_name="sipwave.platform.account_info", module_args=args,
                task_vars=task_vars,
            )
        )  # fmt: skip
        if result.get("failed"):
            return result
        found = result.get("account") or {"login": login, "state": None}
        try:
            if controller["export"]:
                plan = plan_from_dict(controller["number_plan"] or {})
                found["export"] = export_view(read_export_once(controller["export"], plan), login)
        except (ExportError, NumberError) as exc:
            raise AnsibleActionFail(str(exc)) from exc
        found["mails"] = mails(controller["sent_log"], login)
        result["account"] = found
        return result
