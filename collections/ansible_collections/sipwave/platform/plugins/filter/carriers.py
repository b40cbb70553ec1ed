# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The carriers' dispatcher sets: the one place that numbers them and orders their members.
The kamailio role renders the same list into dispatcher.list and into the router's
settings.json, so the router and dispatcher cannot disagree on which set id holds which
carriers. Documented in carrier_sets.yml beside this file."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

# The site of the sets of carriers that serve every site.
EVERY_SITE = ""


def _fallback(members: dict[tuple[str, str], list[str]], prefix: str) -> list[str]:
    """The carriers of every site that would carry a call to ``prefix`` had the site none of
    its own: those of the longest prefix of every site that ``prefix`` starts with."""
    covering = [p for (site, p) in members if site == EVERY_SITE and prefix.startswith(p)]
    return list(members[(EVERY_SITE, max(covering, key=len))]) if covering else []


def _priorities(own: list[str], fallback: list[str], priority: dict[str, int]) -> dict[str, int]:
    """A set's dispatcher priorities (higher first): a site's carriers above the fallback
    ones, each group in its configured order, none negative. Without a fallback, as
    configured."""
    if not fallback:
        return {name: priority[name] for name in own}
    lowest = min(priority[name] for name in fallback)
    span = max(priority[name] for name in fallback) - lowest
    lowest_own = min(priority[name] for name in own)
    return {
        **{name: priority[name] - lowest for name in fallback},
        **{name: priority[name] - lowest_own + span + 1 for name in own},
    }


def carrier_sets(carriers: list[dict], fallback: bool = True) -> list[dict]:
    """One set per (site, E.164 prefix) that some carrier serves, numbered from 1 in the order
    of (site, prefix): the sets of carriers without ``sites`` come first, so a configuration
    without sites keeps the set ids it had before sites existed. A site's set also holds, at
    lower priorities, the carriers of every site that serve its prefix (the longest of their
    prefixes that it starts with): when the site's own carriers are all down or fail, its
    calls go out through those. ``fallback=False`` leaves them out: dispatcher's weight
    algorithm (9) ignores priorities and would share the site's calls with them."""
    if not isinstance(carriers, list):
        raise AnsibleFilterError("carrier_sets expects the list of carriers (kamailio_carriers)")
    members: dict[tuple[str, str], list[str]] = {}
    priority: dict[str, int] = {}
    for carrier in carriers:
        try:
            name = str(carrier["name"])
            prefixes = [str(prefix) for prefix in carrier["prefixes"]]
        except (KeyError, TypeError) as exc:
            raise AnsibleFilterError(f"carrier_sets: a carrier without {exc}: {carrier}") from exc
        try:
            priority[name] = int(carrier.get("priority") or 0)
        except (TypeError, ValueError) as exc:
            raise AnsibleFilterError(f"carrier_sets: a priority is no integer: {carrier}") from exc
        for site in carrier.get("sites") or [EVERY_SITE]:
            for prefix in prefixes:
                names = members.setdefault((str(site), prefix), [])
                if name not in names:
                    names.append(name)
    sets = []
    for setid, ((site, prefix), own) in enumerate(sorted(members.items()), 1):
        shared = _fallback(members, prefix) if fallback and site != EVERY_SITE else []
        sets.append({
            "setid": setid,
            "site": site,
            "prefix": prefix,
            "carriers": own + shared,
            "fallback": shared,
            "priorities": _priorities(own, shared, priority),
        })  # fmt: skip
    return sets


class FilterModule:
    def filters(self) -> dict:
        return {"carrier_sets": carrier_sets}
