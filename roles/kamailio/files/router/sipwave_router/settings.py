"""Site values of the router, read once per worker from the rendered settings.json."""

import json
import re
from dataclasses import dataclass
from pathlib import Path


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
    # One case-insensitive search instead of a loop over the names: this runs per request.
    scanner_pattern: re.Pattern | None = None

    def is_scanner(self, user_agent: str) -> bool:
        return (
            self.scanner_pattern is not None and self.scanner_pattern.search(user_agent) is not None
        )

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
    scanners = tuple(u.lower() for u in data.get("scanner_user_agents", []))
    return Settings(
        domains=frozenset(d.lower() for d in data["domains"]),
        trusted_peers=frozenset(data.get("trusted_peers", [])),
        prefix_routes=tuple(routes),
        auth_failure_limit=int(data.get("auth_failure_limit", 20)),
        max_forwards=int(data.get("max_forwards", 10)),
        scanner_user_agents=scanners,
        scanner_pattern=re.compile("|".join(map(re.escape, scanners)), re.IGNORECASE)
        if scanners
        else None,
    )


def load_settings(path: Path) -> Settings:
    with open(path, encoding="utf-8") as handle:
        return settings_from_dict(json.load(handle))
