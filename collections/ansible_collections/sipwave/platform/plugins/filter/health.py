# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of playbooks/health.yml. Each is documented in the .yml file of its name."""

from __future__ import annotations

from datetime import UTC, datetime

from ansible.errors import AnsibleFilterError

# community.crypto.x509_certificate_info's not_after: ASN.1 GeneralizedTime in UTC.
_ASN1_TIME = "%Y%m%d%H%M%SZ"


def certificate_health(
    not_after: str, warn_days: int = 21, down_days: int = 0, now: str | None = None
) -> dict:
    """{state, detail} of a certificate that expires at ``not_after``: ``down`` once fewer
    than ``down_days`` days are left (0: once expired), ``warning`` under ``warn_days``."""
    if (
        not isinstance(warn_days, int)
        or not isinstance(down_days, int)
        or not (0 <= down_days <= warn_days)
    ):
        raise AnsibleFilterError(
            f"certificate_health: need 0 <= down_days <= warn_days (got {down_days}, {warn_days})"
        )
    try:
        expires = datetime.strptime(str(not_after), _ASN1_TIME).replace(tzinfo=UTC)
        today = datetime.strptime(now, _ASN1_TIME).replace(tzinfo=UTC) if now else datetime.now(UTC)
    except ValueError:
        return {"state": "down", "detail": f"certificate expiry {not_after!r} cannot be read"}
    left = (expires - today).total_seconds() / 86400
    when = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    if left < 0:
        return {"state": "down", "detail": f"certificate expired {when}"}
    state = "down" if left < down_days else "warning" if left < warn_days else "ok"
    return {"state": state, "detail": f"certificate expires {when} ({int(left)} days left)"}


def worst_health(results: list) -> dict:
    """The worst of several {state, detail} (down, then warning, then ok), details joined."""
    order = {"ok": 0, "warning": 1, "down": 2}
    if (
        not isinstance(results, list)
        or not results
        or not all(isinstance(r, dict) and r.get("state") in order for r in results)
    ):
        raise AnsibleFilterError("worst_health expects a list of {state: ok|warning|down, detail}")
    worst = max(results, key=lambda r: order[r["state"]])["state"]
    return {"state": worst, "detail": "; ".join(str(r.get("detail", "")) for r in results)}


class FilterModule:
    def filters(self) -> dict:
        return {"certificate_health": certificate_health, "worst_health": worst_health}
