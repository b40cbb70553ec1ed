"""Site values of the router, read once per worker from the rendered settings.json."""

import json
from dataclasses import dataclass
from pathlib import Path

from sipwave_router.e164 import NumberPlan, plan_from_dict

# Without a number_plan in settings.json (a proxy without dial-in), numbers without a
# country code are not read as national ones of any particular country.
NO_NATIONAL_NUMBERS = {"country_code": "1", "national_lengths": []}


@dataclass(frozen=True)
class PrefixRoute:
    prefix: str
    destination: str
    name: str


@dataclass(frozen=True)
class Settings:
    domains: frozenset[str]
    trusted_peers: frozenset[str]
    # Longest prefix first, so the first match is the most specific one.
    prefix_routes: tuple[PrefixRoute, ...]
    auth_failure_limit: int
    max_forwards: int
    scanner_user_agents: tuple[str, ...]
    number_plan: NumberPlan
    # Called numbers of the dial-in service, exactly as they arrive in the request URI.
    dialin_numbers: frozenset[str]

    def route_for(self, called: str) -> PrefixRoute | None:
        for route in self.prefix_routes:
            if called.startswith(route.prefix):
                return route
        return None


def settings_from_dict(data: dict) -> Settings:
    routes = sorted(
        (
            PrefixRoute(
                prefix=str(r["prefix"]),
                destination=r["destination"],
                name=r.get("name", str(r["prefix"])),
            )
            for r in data.get("prefix_routes", [])
        ),
        key=lambda r: len(r.prefix),
        reverse=True,
    )
    return Settings(
        domains=frozenset(d.lower() for d in data["domains"]),
        trusted_peers=frozenset(data.get("trusted_peers", [])),
        prefix_routes=tuple(routes),
        auth_failure_limit=int(data.get("auth_failure_limit", 20)),
        max_forwards=int(data.get("max_forwards", 10)),
        scanner_user_agents=tuple(u.lower() for u in data.get("scanner_user_agents", [])),
        number_plan=plan_from_dict(data.get("number_plan") or NO_NATIONAL_NUMBERS),
        dialin_numbers=frozenset(str(n) for n in data.get("dialin_numbers", [])),
    )


def load_settings(path: Path) -> Settings:
    with open(path, encoding="utf-8") as handle:
        return settings_from_dict(json.load(handle))
