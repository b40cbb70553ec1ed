# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reconciliation: after a run, the database is checked against the input (every account in
exactly one state, every number and alias where the state says), never against the plan."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from ansible_collections.sipwave.platform.plugins.module_utils.wave.model import (
    DIALIN,
    LIVE_STATES,
    MAX_REPORTED,
    NUMBER,
    PORTED_STATES,
    STATES,
    TEMPORARY,
    Settings,
    State,
    WaveAccount,
    alias_user,
    label,
)


def reconcile(
    state: State,
    accounts: Sequence[WaveAccount],
    rejected: Mapping[str, str],
    settings: Settings,
    kept_decisions: Mapping[str, Mapping[str, str]] | None = None,
) -> dict:
    """Check the result against the input: every account in one state, every number there.

    A closed account's numbers are expected in the state the setting gives, except those in
    ``kept_decisions`` (login -> {number: state}), which keep the decision of their closure.
    """
    kept_decisions = kept_decisions or {}
    problems: list[str] = []
    per_state: Counter[str] = Counter()
    expected = Counter()
    present = Counter()
    aliases = set(state.aliases.values())
    # Plain locals and loops: this runs for every account of a 100,000-account wave.
    accounts_rows, subscribers, all_numbers = state.accounts, state.subscribers, state.numbers
    closure_numbers = settings.closure_numbers
    for login in rejected:
        row = state.accounts.get(login)
        if row is None:
            problems.append(f"{login}: no account row")
        else:
            per_state[row.state] += 1
    for account in accounts:
        login = account.login
        row = accounts_rows.get(login)
        if row is None or row.state not in STATES:
            problems.append(f"{login}: no account row in a known state")
            continue
        account_state = row.state
        per_state[account_state] += 1
        live = account_state in LIVE_STATES
        identity = (row.current_username, row.current_domain) if live else None
        if live and identity not in subscribers:
            problems.append(f"{login}: {label(identity)} cannot register")
        numbers = all_numbers.get(login, {})
        if live:
            user, domain = identity
            for number in account.numbers:
                have = numbers.get((number, NUMBER))
                if have == "legacy" or have in PORTED_STATES:
                    present[NUMBER] += 1
                else:
                    problems.append(f"{login}: {NUMBER} {number} is not legacy")
                if (alias_user(number), domain, user, domain) in aliases:
                    present["alias"] += 1
                else:
                    problems.append(f"{login}: no alias for {number}")
            expected[NUMBER] += len(account.numbers)
            expected["alias"] += len(account.numbers)
            dialin_state = "active"
        else:
            kept = kept_decisions.get(login, {})
            for number in account.numbers:
                want_state = kept.get(number, closure_numbers)
                if numbers.get((number, NUMBER)) == want_state:
                    present[NUMBER] += 1
                else:
                    problems.append(f"{login}: {NUMBER} {number} is not {want_state}")
            expected[NUMBER] += len(account.numbers)
            dialin_state = "released"
        for number in account.dialin_numbers:
            if numbers.get((number, DIALIN)) == dialin_state:
                present[DIALIN] += 1
            else:
                problems.append(f"{login}: {DIALIN} {number} is not {dialin_state}")
        expected[DIALIN] += len(account.dialin_numbers)
        temporary = [n for n, kind in numbers if kind == TEMPORARY]
        if len(temporary) > 1 or (temporary and not live):
            problems.append(f"{login}: holds temporary numbers {', '.join(temporary)}")
        elif temporary:
            present[TEMPORARY] += 1
    return {
        "ok": not problems,
        "accounts": len(accounts) + len(rejected),
        "accounts_in_one_state": sum(per_state.values()),
        "per_state": {name: per_state[name] for name in STATES if per_state[name]},
        "numbers_expected": expected[NUMBER],
        "numbers_present": present[NUMBER],
        "dialin_numbers_expected": expected[DIALIN],
        "dialin_numbers_present": present[DIALIN],
        "aliases_expected": expected["alias"],
        "aliases_present": present["alias"],
        "temporary_numbers": present[TEMPORARY],
        "problems": problems[:MAX_REPORTED],
        "problem_count": len(problems),
    }
