# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the cost report: the rated calls of every proxy summed up per department, and
either list as CSV for accounting. Each is documented in the .yml file of its name."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.sipwave.platform.plugins.module_utils.call_costs import (
    CALL_COLUMNS,
    DEPARTMENT_COLUMNS,
    by_department,
)
from ansible_collections.sipwave.platform.plugins.module_utils.csv_records import to_csv


def cost_departments(calls: list, currency: str) -> list[dict]:
    if not isinstance(calls, list) or not all(isinstance(c, dict) for c in calls):
        raise AnsibleFilterError(
            "cost_departments expects the calls of sipwave.platform.call_costs"
        )
    try:
        return by_department(calls, str(currency))
    except (KeyError, ValueError, ArithmeticError) as exc:
        raise AnsibleFilterError(f"cost_departments: {exc}") from exc


def cost_csv(rows: list, kind: str) -> str:
    columns = {"calls": CALL_COLUMNS, "departments": DEPARTMENT_COLUMNS}.get(kind)
    if columns is None:
        raise AnsibleFilterError("cost_csv: kind must be calls or departments")
    return to_csv(rows, columns)


class FilterModule:
    def filters(self) -> dict:
        return {"cost_departments": cost_departments, "cost_csv": cost_csv}
