# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the unregistered-accounts report: the results of every proxy combined, and the
list as CSV for customer care. Each is documented in the .yml file of its name."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.sipwave.platform.plugins.module_utils.call_costs import to_csv
from ansible_collections.sipwave.platform.plugins.module_utils.registrations import (
    COLUMNS,
    on_every_proxy,
)


def unregistered_everywhere(results: list) -> list[dict]:
    if not isinstance(results, list) or not all(
        isinstance(r, dict) and isinstance(r.get("unregistered"), list) for r in results
    ):
        raise AnsibleFilterError(
            "unregistered_everywhere expects the results of sipwave.platform.wave_registrations"
        )
    return on_every_proxy(results)


def unregistered_csv(accounts: list) -> str:
    if not isinstance(accounts, list) or not all(isinstance(a, dict) for a in accounts):
        raise AnsibleFilterError("unregistered_csv expects the accounts of unregistered_everywhere")
    return to_csv(accounts, COLUMNS)


class FilterModule:
    def filters(self) -> dict:
        return {
            "unregistered_everywhere": unregistered_everywhere,
            "unregistered_csv": unregistered_csv,
        }
