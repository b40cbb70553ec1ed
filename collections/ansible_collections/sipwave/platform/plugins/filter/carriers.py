# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The carriers' dispatcher sets: the one place that numbers them. The kamailio role renders
the same list into dispatcher.list and into the router's settings.json, so the router and
dispatcher cannot disagree on which set id holds which carriers. Documented in
carrier_sets.yml beside this file."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

# The site of the sets of carriers that serve every site.
EVERY_SITE = ""


def carrier_sets(carriers: list[dict]) -> list[dict]:
    """One set per (site, E.164 prefix) that some carrier serves, numbered from 1 in the order
    of (site, prefix): the sets of carriers without ``sites`` come first, so a configuration
    without sites keeps the set ids it had before sites existed."""
    if not isinstance(carriers, list):
        raise AnsibleFilterError("carrier_sets expects the list of carriers (kamailio_carriers)")
    members: dict[tuple[str, str], list[str]] = {}
    for carrier in carriers:
        try:
            name = str(carrier["name"])
            prefixes = [str(prefix) for prefix in carrier["prefixes"]]
        except (KeyError, TypeError) as exc:
            raise AnsibleFilterError(f"carrier_sets: a carrier without {exc}: {carrier}") from exc
        for site in carrier.get("sites") or [EVERY_SITE]:
            for prefix in prefixes:
                names = members.setdefault((str(site), prefix), [])
                if name not in names:
                    names.append(name)
    return [
        {"setid": setid, "site": site, "prefix": prefix, "carriers": names}
        for setid, ((site, prefix), names) in enumerate(sorted(members.items()), 1)
    ]


class FilterModule:
    def filters(self) -> dict:
        return {"carrier_sets": carrier_sets}
