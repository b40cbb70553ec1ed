"""What a few customers of the demo's wave lived through, one short timeline each: the mails
they got (and from whom), each change the wave engine made to their account, and what
customer care has to take up. Read from the lab proxy's audit table, the controller's
sent-log and the wave's reports; nothing secret is in any of them."""

import json
from pathlib import Path

from demo_calls import container_output

DATABASE = "/var/lib/kamailio/sipwave.sqlite"
ACTIONS = {
    "phase1": "moved to the new proxy (phase 1: same login, password and domain)",
    "phase2": "moved to its new identity (phase 2)",
    "closed": "closed, balance refunded",
    "rollback": "rolled back: as before the wave",
    "consent_migrate": "consented to the new operator",
    "consent_close": "asked to close the account",
    "rejected": "not migrated: its export row was rejected",
    "grace_ended": "old identity switched off (grace period over)",
    "credentials_changed": "credentials changed",
}


def print_journeys(container: str, reports: Path, logins: list[str]) -> None:
    listed = ", ".join(f"'{login}'" for login in logins)
    audit = container_output(
        container, "sqlite3", DATABASE,
        f"SELECT login, at, wave, action FROM sipwave_audit WHERE login IN ({listed}) ORDER BY id",
    )  # fmt: skip
    events: dict[str, list[tuple[str, str]]] = {login: [] for login in logins}
    for line in audit.splitlines():
        login, at, wave, action = line.split("|", 3)
        events[login].append((at, ACTIONS.get(action, action) + (f" ({wave})" if wave else "")))
    sent_log = reports / "notifications.jsonl"
    if sent_log.exists():
        for line in sent_log.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            if entry.get("login") in events:
                sender = entry.get("sender") or "the platform"
                events[entry["login"]].append(
                    (entry["sent_at"], f"mail '{entry['notification']}' from {sender}")
                )
    care = {}
    for report in sorted(reports.glob("*.json"), key=lambda path: path.stat().st_mtime):
        for action in json.loads(report.read_text()).get("actions_for_customer_care") or []:
            care[action["login"]] = action
    print("\n== what the sample customers lived through")
    for login in logins:
        print(f"   {login}:")
        for at, what in sorted(events[login]):
            print(f"     {at[:19]}  {what}")
        if login in care:
            action = care[login]
            why = [d["why"] for d in action.get("dropped", [])] or action.get("why", [])
            print(f"     customer care: {action['action']}: {'; '.join(why)[:150]}")
        elif not events[login]:
            print("     nothing yet")
