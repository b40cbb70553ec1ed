# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A wave's decision window: from the wave's date (its phase 1) to its ``decide_by`` day, the
customers decide (migrate or close), and customer care may move one of them to phase 2 at
once. After it, the wave's phase-2 run applies the undecided policy (model.Settings)."""

from __future__ import annotations

from datetime import date

from ansible_collections.sipwave.platform.plugins.module_utils.wave.model import (
    UNDECIDED_POLICIES,
    MigrationError,
    wave_day,
)


def decision_window(wave: dict) -> tuple[date | None, date | None]:
    """(first day, last day) of the wave's decision window; None where it is open-ended.
    MigrationError names the wave and the setting when one is bad."""
    name = wave.get("name")
    first, last = (
        wave_day(wave.get("date"), name, "date"),
        wave_day(wave.get("decide_by"), name, "decide_by"),
    )
    if first and last and last < first:
        raise MigrationError(
            f"wave {wave.get('name')}: decide_by {last} is before the wave's date {first}"
        )
    policy = wave.get("undecided")
    if policy is not None and policy not in UNDECIDED_POLICIES:
        raise MigrationError(
            f"wave {wave.get('name')}: undecided {policy!r} must be one of "
            f"{', '.join(UNDECIDED_POLICIES)}"
        )
    return first, last


def check_move_now(wave: dict, today: date) -> None:
    """Refuse moving one account to phase 2 at once outside the wave's decision window."""
    first, last = decision_window(wave)
    if first and today < first:
        raise MigrationError(
            f"wave {wave.get('name')} starts on {first}: an account moves to phase 2 at once "
            f"only from then (today is {today})"
        )
    if last and today > last:
        raise MigrationError(
            f"the decision window of wave {wave.get('name')} ended on {last} (today is "
            f"{today}): its phase-2 run applies the undecided policy; move the account with "
            "the wave's run instead"
        )
