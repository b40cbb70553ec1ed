# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the migration: the phase-2 password of an account that only had an HA1, and a wave
result's per-account outcomes. Each is documented in the .yml file of its name beside this one."""

from __future__ import annotations

import zlib

from ansible.errors import AnsibleFilterError
from ansible_collections.sipwave.platform.plugins.module_utils.credentials import (
    CredentialError,
    generated_password,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.outcomes import outcomes_of


def phase2_password(login: str, site_secret: str) -> str:
    try:
        return generated_password(site_secret, str(login))
    except CredentialError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def wave_outcomes(result: dict) -> list[dict]:
    """The per-account outcomes of a registered sipwave.platform.wave result or a report."""
    if not isinstance(result, dict):
        raise AnsibleFilterError("wave_outcomes expects a registered wave result or a report")
    try:
        return outcomes_of(result)
    except (ValueError, TypeError, zlib.error) as exc:
        raise AnsibleFilterError(f"wave_outcomes: account_outcomes is not packed: {exc}") from exc


class FilterModule:
    def filters(self) -> dict:
        return {"phase2_password": phase2_password, "wave_outcomes": wave_outcomes}
