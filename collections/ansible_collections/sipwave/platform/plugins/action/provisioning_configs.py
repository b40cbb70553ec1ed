# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of sipwave.platform.provisioning_configs.

Reads the legacy export and the accounts' migration states, decides every device's line
(phase 1: legacy login, domain and password; phase 2: the prefixed login on the new domain,
with the generated password where the export only had an HA1), derives the device tokens,
loads the templates (site overrides first) and hands it all to the module in one file in
the task's private temporary directory. The task result never holds a password or a token.
"""

from __future__ import annotations

import json
import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.sipwave.platform.plugins.module_utils.credentials import (
    CredentialError,
    device_token,
    generated_password,
    staff_password,
)
from ansible_collections.sipwave.platform.plugins.module_utils.e164 import (
    NumberError,
    plan_from_dict,
)
from ansible_collections.sipwave.platform.plugins.module_utils.export_fields import parse_device
from ansible_collections.sipwave.platform.plugins.module_utils.legacy_export import (
    Export,
    ExportError,
)
from ansible_collections.sipwave.platform.plugins.module_utils.provisioning import (
    VENDOR_FILES,
    AccountState,
    Line,
    ProvisioningError,
    line_for,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.model import LIVE_STATES
from ansible_collections.sipwave.platform.plugins.plugin_utils.controller import read_export_once
from ansible_collections.sipwave.platform.plugins.plugin_utils.remote_file import transfer_json

REQUIRED_ARGS = ("export", "number_plan", "site_secret", "states", "template_dirs")
# Optional: with both, each device is also looked for under its phase-2 identity.
PHASE2_ARGS = ("login_prefix", "new_domain")
# Optional: the staff members' accounts (account_states' staff), provisioned with the rest.
CONTROLLER_ARGS = REQUIRED_ARGS + PHASE2_ARGS + ("staff",)
STAFF_STATE = "staff"  # the Line state of a staff member's phone
TEMPLATE_SUFFIX = ".j2"
MAX_SHOWN_PROBLEMS = 200


def parse_states(states) -> dict[str, AccountState]:
    """States as M(account_states) returns them: a JSON string [columns, rows], or a list of
    dictionaries (login, state, current_username, current_domain)."""
    if isinstance(states, str):
        try:
            columns, rows = json.loads(states)
        except ValueError as exc:
            raise AnsibleActionFail("states is not the value account_states returned") from exc
        states = [dict(zip(columns, row, strict=True)) for row in rows]
    if not isinstance(states, list):
        raise AnsibleActionFail("states must be the states returned by account_states")
    parsed = {}
    for entry in states:
        parsed[str(entry["login"])] = AccountState(
            str(entry["login"]),
            str(entry["state"]),
            entry.get("current_username"),
            entry.get("current_domain"),
        )
    return parsed


def load_templates(template_dirs: list[str]) -> tuple[dict[str, str], list[str]]:
    """Template name -> source over the directories, the first directory having a name wins.
    Also returns the names that an earlier directory overrides in a later one."""
    templates: dict[str, str] = {}
    origin: dict[str, int] = {}
    overridden = []
    for position, directory in enumerate(template_dirs):
        if not os.path.isdir(directory):
            if position == len(template_dirs) - 1:
                raise AnsibleActionFail(f"template directory {directory} does not exist")
            continue  # an override directory that a site does not use
        for root, _dirs, files in os.walk(directory):
            for file_name in files:
                if not file_name.endswith(TEMPLATE_SUFFIX):
                    continue
                path = os.path.join(root, file_name)
                name = os.path.relpath(path, directory).replace(os.sep, "/")
                if name in templates:
                    if origin[name] < position:
                        overridden.append(name)
                    continue
                with open(path, encoding="utf-8") as handle:
                    templates[name] = handle.read()
                origin[name] = position
    missing = sorted(
        name for pairs in VENDOR_FILES.values() for name, _ in pairs if name not in templates
    )
    if missing:
        raise AnsibleActionFail(f"no template {', '.join(missing)} in {', '.join(template_dirs)}")
    return templates, sorted(set(overridden))


def parse_staff(staff) -> list[dict]:
    """Staff members as M(account_states) returns them: a JSON string or a list."""
    if staff in (None, ""):
        return []
    if isinstance(staff, str):
        try:
            staff = json.loads(staff)
        except ValueError as exc:
            raise AnsibleActionFail("staff is not the value account_states returned") from exc
    if not isinstance(staff, list) or not all(isinstance(m, dict) for m in staff):
        raise AnsibleActionFail("staff must be the staff returned by account_states")
    return staff


def staff_lines(staff: list[dict], site_secret: str) -> list[tuple[str, Line, list]]:
    """(where, line, devices) of each staff member: their own identity with the password
    derived for them (credentials.staff_password)."""
    found = []
    for member in staff:
        login, domain = str(member["login"]), str(member["domain"])
        line = Line(login, STAFF_STATE, login, domain, str(member.get("display_name") or ""),
                    staff_password(site_secret, login))  # fmt: skip
        devices = [parse_device(str(written))[0] for written in member.get("devices") or []]
        found.append((f"staff member {login}", line, [d for d in devices if d is not None]))
    return found


def _lines(export, states, site_secret, phase2, staff):
    """(where, owner, line, devices, identities) of every live account, then of every staff member.

    A phone may be registered as any identity its account had: the one its files now give,
    the legacy one and, with ``phase2`` (login prefix, new domain), the phase-2 one, which a
    phone rolled back from phase 2 is still registered as until it fetches its files."""
    for account in export.accounts.values():
        state = states.get(account.login)
        if state is None or state.state not in LIVE_STATES:
            continue
        generated = None
        if not account.password and state.state == "phase2":
            generated = generated_password(site_secret, account.login)
        line = line_for(account.login, account.domain, account.display_name, account.password,
                        state, generated)  # fmt: skip
        names = [f"{line.username}@{line.domain}"]
        legacy = f"{account.login}@{account.domain}"
        if legacy not in names:
            names.append(legacy)
        if phase2 and all(phase2):
            moved = f"{phase2[0]}{account.login}@{phase2[1]}"
            if moved not in names:
                names.append(moved)
        owner = f"login {account.login!r} (line {account.line})"
        yield f"{export.path}:{account.line}", owner, line, account.devices, names
    for where, line, devices in staff_lines(staff or [], site_secret):
        yield where, where, line, devices, [f"{line.username}@{line.domain}"]


def plan_devices(
    export: Export,
    states: dict[str, AccountState],
    site_secret: str,
    phase2: tuple[str, str] | None = None,
    staff: list[dict] | None = None,
) -> tuple[list[dict], dict[str, list[str]], list[str]]:
    """The module's device rows, the SIP identities of each MAC, and the devices left out
    (a MAC of two accounts: neither gets it)."""
    rows: list[dict] = []
    identities: dict[str, list[str]] = {}
    problems: list[str] = []
    seen: dict[str, str] = {}
    duplicated: set[str] = set()
    for where, owner, line, devices, names in _lines(export, states, site_secret, phase2, staff):
        for device in devices:
            if device.mac in seen:
                problems.append(
                    f"{where}: MAC {device.mac} is also a device of {seen[device.mac]}; "
                    "neither is provisioned"
                )
                duplicated.add(device.mac)
                continue
            seen[device.mac] = owner
            rows.append(
                {
                    "mac": device.mac,
                    "vendor": device.vendor,
                    "model": device.model,
                    "token": device_token(site_secret, device.mac),
                    "line": [line.login, line.state, line.username, line.domain,
                             line.display_name, line.password],
                    "identities": names,
                }
            )  # fmt: skip
            identities[device.mac] = names
    if duplicated:
        rows = [row for row in rows if row["mac"] not in duplicated]
    return rows, identities, problems


class ActionModule(ActionBase):
    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        controller = {name: args.pop(name, None) for name in CONTROLLER_ARGS}
        phase2 = tuple(str(controller[name] or "") for name in PHASE2_ARGS)
        for name in REQUIRED_ARGS:
            if controller[name] in (None, ""):
                raise AnsibleActionFail(f"{name} is required")
        try:
            export = read_export_once(
                controller["export"], plan_from_dict(controller["number_plan"])
            )
            states = parse_states(controller["states"])
            rows, _identities, problems = plan_devices(
                export, states, str(controller["site_secret"]), phase2,
                parse_staff(controller["staff"]),
            )  # fmt: skip
            templates, overridden = load_templates(list(controller["template_dirs"]))
        except (ExportError, NumberError, CredentialError, ProvisioningError) as exc:
            raise AnsibleActionFail(str(exc)) from exc
        args["templates"] = templates
        try:
            args["devices_file"] = transfer_json(self, "devices.json", rows)
            module_result = self._execute_module(
                module_name="sipwave.platform.provisioning_configs",
                module_args=args,
                task_vars=task_vars,
            )
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        module_result.pop("invocation", None)  # the templates, long and of no use here
        result.update(module_result)
        result["overridden_templates"] = overridden
        result["problems"] = problems[:MAX_SHOWN_PROBLEMS]
        result["export"] = export.summary()
        return result
