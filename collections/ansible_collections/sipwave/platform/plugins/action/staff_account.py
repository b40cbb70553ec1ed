# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of sipwave.platform.staff_account.

Checks the input, refuses a login or a phone that the legacy export gives a customer, and
turns the staff member's derived SIP password into HA1 and HA1b: the password itself and the
site secret never leave the controller, and no result holds them."""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.sipwave.platform.plugins.module_utils.credentials import (
    CredentialError,
    ha1,
    ha1b,
    staff_password,
)
from ansible_collections.sipwave.platform.plugins.module_utils.e164 import (
    NumberError,
    plan_from_dict,
)
from ansible_collections.sipwave.platform.plugins.module_utils.legacy_export import ExportError
from ansible_collections.sipwave.platform.plugins.module_utils.staff import (
    StaffError,
    member_from_input,
)
from ansible_collections.sipwave.platform.plugins.plugin_utils.controller import read_export_once

# Arguments only the controller side uses; the module never sees them.
CONTROLLER_ARGS = ("site_secret", "export")


def customer_clash(export, login: str, macs: list[str]) -> str | None:
    """Why the export forbids this login or one of these MACs, or None."""
    account = export.accounts.get(login)
    if account is not None:
        return f"login {login!r} is taken by a customer ({export.path}:{account.line})"
    for account in export.accounts.values():
        for device in account.devices:
            if device.mac in macs:
                return (f"MAC {device.mac} is a phone of customer {account.login} "
                        f"({export.path}:{account.line})")  # fmt: skip
    return None


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        site_secret, export_path = (args.pop(name, None) for name in CONTROLLER_ARGS)
        site_secret = str(site_secret or "")
        try:
            plan = plan_from_dict(args.get("number_plan") or {})
            member = member_from_input(args, plan, str(args.get("domain") or ""))
            if export_path:
                clash = customer_clash(read_export_once(export_path, plan), member.login,
                                       member.macs)  # fmt: skip
                if clash:
                    raise StaffError(f"refused: {clash}")
            password = staff_password(site_secret, member.login)
        except (StaffError, NumberError, ExportError, CredentialError) as exc:
            raise AnsibleActionFail(str(exc)) from exc
        args["ha1"] = ha1(member.login, member.domain, password)
        args["ha1b"] = ha1b(member.login, member.domain, password)
        module_result = self._execute_module(
            module_name="sipwave.platform.staff_account", module_args=args, task_vars=task_vars
        )
        module_result.pop("invocation", None)
        result.update(module_result)
        return result
