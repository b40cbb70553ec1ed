# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the cost report: the rated calls of every proxy merged into one report (calls
and site/department totals), its lists as CSV for accounting, and its page with charts.
Each is documented in the .yml file of its name."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.sipwave.platform.plugins.module_utils.call_costs import (
    CALL_COLUMNS,
    DEPARTMENT_COLUMNS,
    report,
    to_csv,
)
from ansible_collections.sipwave.platform.plugins.module_utils.cost_page import page


def cost_report(calls: list, currency: str) -> dict:
    if not isinstance(calls, list) or not all(isinstance(c, dict) for c in calls):
        raise AnsibleFilterError("cost_report expects the calls of sipwave.platform.call_costs")
    try:
        return report(calls, str(currency))
    except (KeyError, ValueError, ArithmeticError) as exc:
        raise AnsibleFilterError(f"cost_report: {exc}") from exc


def cost_csv(rows: list, kind: str) -> str:
    columns = {"calls": CALL_COLUMNS, "departments": DEPARTMENT_COLUMNS}.get(kind)
    if columns is None:
        raise AnsibleFilterError("cost_csv: kind must be calls or departments")
    return to_csv(rows, columns)


def cost_html(report: dict, period: str, currency: str, totals: dict | None = None) -> str:
    if not isinstance(report, dict) or not isinstance(report.get("departments"), list):
        raise AnsibleFilterError("cost_html expects the result of sipwave.platform.cost_report")
    try:
        return page(report["departments"], str(period), str(currency), dict(totals or {}))
    except (KeyError, ValueError, ArithmeticError) as exc:
        raise AnsibleFilterError(f"cost_html: {exc}") from exc


class FilterModule:
    def filters(self) -> dict:
        return {"cost_report": cost_report, "cost_csv": cost_csv, "cost_html": cost_html}
