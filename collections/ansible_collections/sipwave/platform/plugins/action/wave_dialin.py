# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sipwave.platform.wave_dialin: a wave's dial-in rows, and their check, on the controller.

``operation: plan`` maps the wave's live accounts (the run's outcome per account, and the
legacy export) to dialin_access entries. ``operation: record`` takes every PBX host's
dialin_access result, writes the ``dialin`` section into the run's report(s) and fails when
a dial-in number did not arrive. Nothing here connects to a host.
"""

from __future__ import annotations

import json
import os
import re

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.sipwave.platform.plugins.module_utils.dialin_db import DialinError
from ansible_collections.sipwave.platform.plugins.module_utils.e164 import (
    NumberError,
    plan_from_dict,
)
from ansible_collections.sipwave.platform.plugins.module_utils.files import locked_json_update
from ansible_collections.sipwave.platform.plugins.module_utils.legacy_export import (
    ExportError,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.outcomes import outcomes_of
from ansible_collections.sipwave.platform.plugins.module_utils.wave_dialin import (
    DEFAULT_DEPARTMENT,
    DEFAULT_MAX_CALLS,
    report_section,
    wave_dialin,
    with_dialin,
)
from ansible_collections.sipwave.platform.plugins.plugin_utils.controller import read_export_once

OPERATIONS = ("plan", "record")
# Every option is the controller's; the module file of the same name documents them all in
# its argument_spec, so none is documented on top of it.
CONTROLLER_ARGS: tuple[str, ...] = ()


def _wave_name(wave) -> str:
    name = wave.get("name") if isinstance(wave, dict) else wave
    if not name or not isinstance(name, str):
        raise AnsibleActionFail("wave must be a wave of sipwave_waves or a wave name")
    return name


def newest_report(report_dir: str, wave: str) -> str:
    """The wave's newest report (``<wave>-<run_id>.json``, run ids start with the time) of a
    run of the whole wave (a run limited to some accounts ends in ``.accounts.json``)."""
    pattern = re.compile(re.escape(wave) + r"-\d{8}T\d{6}Z-.+(?<!\.accounts)\.json")
    try:
        names = sorted(name for name in os.listdir(report_dir) if pattern.fullmatch(name))
    except OSError as exc:
        raise AnsibleActionFail(f"cannot read the reports in {report_dir}: {exc.strerror}") from exc
    if not names:
        raise AnsibleActionFail(
            f"wave {wave} has no report in {report_dir}: run migrate_wave.yml first"
        )
    return os.path.join(report_dir, names[-1])


def _read_report(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError) as exc:
        raise AnsibleActionFail(f"cannot read the wave report {path}: {exc}") from exc


def _update_report(path: str, section: dict) -> None:
    """Put the section into the report, under the lock the wave's hosts write it with
    (wave_report); written aside and renamed, so a reader never sees half a report."""
    try:
        locked_json_update(path, lambda report: with_dialin(report, section), missing_ok=False)
    except (OSError, ValueError) as exc:
        raise AnsibleActionFail(f"cannot read the wave report {path}: {exc}") from exc


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(
        (
            "operation", "wave", "runs", "report_dir", "export", "number_plan",
            "default_department", "max_calls", "limits", "plan", "results",
        )
    )  # fmt: skip

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = self._task.args
        operation = args.get("operation", "plan")
        if operation not in OPERATIONS:
            raise AnsibleActionFail(f"operation must be one of {', '.join(OPERATIONS)}")
        if operation == "plan":
            result.update(self._plan(args))
        else:
            result.update(self._record(args))
        return result

    def _plan(self, args: dict) -> dict:
        wave = _wave_name(args.get("wave"))
        runs = [r for r in args.get("runs") or [] if r.get("wave") == wave]
        if runs:
            run = runs[0]
            # Every host of a run names the same report (one per run), or each its own.
            reports = list(dict.fromkeys(r["report"] for r in runs if r.get("report")))
        else:
            if not args.get("report_dir"):
                raise AnsibleActionFail("give runs (wave results) or report_dir")
            reports = [newest_report(args["report_dir"], wave)]
            run = _read_report(reports[0])
        operation = run.get("operation", "apply")
        export = None
        try:
            if operation != "rollback":
                if not args.get("export") or not args.get("number_plan"):
                    raise AnsibleActionFail("export and number_plan are needed after an apply")
                export = read_export_once(args["export"], plan_from_dict(args["number_plan"]))
            mapping = wave_dialin(
                wave,
                operation,
                outcomes_of(run),
                export,
                default_department=args.get("default_department") or DEFAULT_DEPARTMENT,
                max_calls=int(args.get("max_calls") or DEFAULT_MAX_CALLS),
                limits=args.get("limits") or {},
            )
        except (DialinError, ExportError, NumberError) as exc:
            raise AnsibleActionFail(str(exc)) from exc
        return {"changed": False, "reports": reports, **mapping.as_dict()}

    def _record(self, args: dict) -> dict:
        mapping = args.get("plan")
        results = args.get("results")
        if not isinstance(mapping, dict) or "source" not in mapping:
            raise AnsibleActionFail("plan must be the result of operation=plan")
        if not isinstance(results, dict):
            raise AnsibleActionFail("results must map each PBX host to its dialin_access result")
        section = report_section(mapping, results)
        written = []
        if not self._task.check_mode:
            for path in mapping.get("reports") or []:
                _update_report(path, section)
                written.append(path)
        # Like the wave's own report, writing it is not a change of the platform.
        outcome = {"changed": False, "dialin": section, "reports": written}
        if not section["ok"] and not self._task.check_mode:
            outcome["failed"] = True
            outcome["msg"] = "dial-in reconciliation failed: " + "; ".join(section["problems"][:10])
        return outcome
