"""Site values of the router, read once per worker from the rendered settings.json."""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from sipwave_router.e164 import NumberPlan, normalise, plan_from_dict

# Without a number_plan in settings.json (a proxy without dial-in), numbers without a
# country code are not read as national ones of any particular country.
NO_NATIONAL_NUMBERS = {"country_code": "1", "national_lengths": []}


@dataclass(frozen=True)
class PrefixRoute:
    prefix: str
    destination: str
    name: str


@dataclass(frozen=True)
class CarrierSet:
    """The dispatcher set of the carriers of one site ("" for every site) for a prefix."""

    prefix: str
    site: str
    setid: int


@dataclass(frozen=True)
class Carrier:
    name: str
    address: str
    port: int
    allows_foreign_clip: bool


@dataclass(frozen=True)
class Metrics:
    """The metrics socket (kamailio.cfg listens there for HTTP) and who may read it."""

    address: str
    port: int
    allowed_peers: frozenset[str]
    wave_interval: int


@dataclass(frozen=True)
class CarrierProbe:
    """A carrier's dispatcher destination (as in dispatcher.list) in each of its sets."""

    name: str
    uri: str
    setids: tuple[int, ...]


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
    # One search of the lower-cased User-Agent instead of a loop over the names: this runs
    # per request. (A case-insensitive pattern folds the case of every character it tries,
    # which profiling showed as 1% of a worker's CPU; str.lower() is one pass.)
    scanner_pattern: re.Pattern | None = None
    # Parallel run on the new proxy: identities of these domains without a subscriber row
    # still live on the legacy platform (a SIP URI; empty when there is none).
    legacy_domains: frozenset[str] = frozenset()
    legacy_platform: str = ""
    # Phase 2 identity of a legacy login: once only that one has a subscriber row (the grace
    # period is over), the legacy identity is refused instead of relayed.
    phase2_login_prefix: str = ""
    phase2_domain: str = ""
    # Parallel run on the legacy platform: proxies that relay phones' requests here, and
    # where calls go for accounts not registered here (moved to the new platform).
    relaying_peers: frozenset[str] = frozenset()
    unregistered_destination: str = ""
    # ... and where calls to numbers in its forwarding table go (empty: no forwarding).
    forwarding_destination: str = ""
    # The addresses this proxy listens on: never banned, never a registered contact.
    proxy_addresses: frozenset[str] = frozenset()
    # Scanner bans per minute, and bans of any kind per ban period (kamailio_ban_seconds):
    # spoofed sources must not fill the ban table without end.
    scanner_ban_limit: int = 60
    ban_table_limit: int = 10000
    # Carriers by address (they are trusted peers too), and their dispatcher sets (the set
    # ids of dispatcher.list), longest prefix first and, at equal length, a site's own before
    # those of every site.
    carriers: dict[str, Carrier] = field(default_factory=dict)
    carrier_sets: tuple[CarrierSet, ...] = ()
    # The customer's sites by the areas (E.164 prefixes) of their numbers, longest area first.
    site_areas: tuple[tuple[str, str], ...] = ()
    carrier_algorithm: int = 8
    # CLIP no screening: login -> E.164 numbers it may present on carriers that allow it.
    clip_allow: dict[str, frozenset[str]] = field(default_factory=dict)
    # Prometheus metrics (None: not served) and the carriers whose state they show.
    metrics: Metrics | None = None
    carrier_probes: tuple[CarrierProbe, ...] = ()
    # The file holding the key of the dialog tokens (dialogs.py; read by the Router, so that
    # the key itself is never part of the settings). "" gives a key of this process only.
    dialog_key_file: str = ""
    # How long a dialog token is followed (seconds): in-dialog requests of an older dialog
    # from anyone but a trusted peer are refused.
    dialog_lifetime: int = 604800

    def route_for(self, called: str) -> PrefixRoute | None:
        for route in self.prefix_routes:
            if called.startswith(route.prefix):
                return route
        return None

    def site_of(self, number: str | None) -> str:
        """The site whose area is the longest prefix of an E.164 number; "" for none."""
        if number:
            for area, site in self.site_areas:
                if number.startswith(area):
                    return site
        return ""

    def site_of_account(self, first_own: str | None, temporary: str | None) -> str:
        """An account's site: by the area of its first own number (the routing cache's
        ``a:``), else of its temporary number (``t:``); "" for none."""
        return self.site_of(first_own or temporary)

    def carrier_set_for(self, number: str, site: str = "") -> int | None:
        """The dispatcher set for a call from ``site`` to an E.164 number (``+digits``): of the
        longest prefix that the site's carriers or the carriers of every site serve, the
        site's own carriers when they serve it. None when no carrier serves the number."""
        for entry in self.carrier_sets:
            if number.startswith(entry.prefix) and entry.site in (site, ""):
                return entry.setid
        return None

    @property
    def legacy_platform_address(self) -> str:
        return uri_host(self.legacy_platform)


# Where a URI's host[:port] ends: its parameters or its headers.
_HOST_END = re.compile(r"[;?]")
_MADDR = re.compile(r";\s*maddr\s*=", re.IGNORECASE)


def uri_host(uri: str) -> str:
    """The host of a SIP URI such as ``sip:127.0.23.41:5060;transport=udp``.

    Never raises: it also reads what a request put into a URI (a Route's ``$du``); a value
    without a sip/sips scheme is read as host[:port] alone. The host is what follows the
    user part's "@", which may itself hold ";" (``sip:127.0.0.1;x@evil.example`` is
    evil.example's, as Kamailio sends it); a URI that could be read two ways (a second "@",
    a "?" before the "@", or a ``maddr`` parameter, which a Kamailio built with HONOR_MADDR
    sends to instead of the host) has no host: "".
    """
    if not uri:
        return ""
    scheme, colon, rest = uri.partition(":")
    if not colon or scheme.lower() not in ("sip", "sips"):
        rest = uri
    user, at, hostpart = rest.partition("@")
    if not at:
        hostpart = rest
    elif "@" in hostpart or "?" in user:
        return ""
    hostport, *params = _HOST_END.split(hostpart, maxsplit=1)
    if params and _MADDR.search(";" + params[0]):
        return ""
    if hostport.startswith("["):
        return hostport[1:].split("]", 1)[0]
    return hostport.split(":", 1)[0]


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
    plan = plan_from_dict(data.get("number_plan") or NO_NATIONAL_NUMBERS)
    carriers = {
        str(c["address"]): Carrier(
            name=str(c["name"]),
            address=str(c["address"]),
            port=int(c.get("port", 5060)),
            allows_foreign_clip=bool(c.get("allows_foreign_clip", False)),
        )
        for c in data.get("carriers", [])
    }
    # The set ids are the role's (the carrier_sets filter), as in dispatcher.list.
    carrier_sets = sorted(
        (
            CarrierSet(prefix=str(s["prefix"]), site=str(s["site"]), setid=int(s["setid"]))
            for s in data.get("carrier_sets", [])
        ),
        key=lambda entry: (-len(entry.prefix), entry.site == ""),
    )
    site_areas = sorted(
        (
            (str(area), str(site["name"]))
            for site in data.get("sites", [])
            for area in site["areas"]
        ),
        key=lambda entry: len(entry[0]),
        reverse=True,
    )
    # A number that is not one fails the release (the router is imported before it goes
    # live), instead of being ignored at call time.
    clip_allow = {
        str(login): frozenset(normalise(str(n), plan) for n in numbers)
        for login, numbers in (data.get("clip_allow") or {}).items()
    }
    metrics = data.get("metrics")
    return Settings(
        domains=frozenset(d.lower() for d in data["domains"]),
        trusted_peers=frozenset(data.get("trusted_peers", [])) | frozenset(carriers),
        prefix_routes=tuple(routes),
        auth_failure_limit=int(data.get("auth_failure_limit", 20)),
        max_forwards=int(data.get("max_forwards", 10)),
        scanner_user_agents=scanners,
        scanner_pattern=re.compile("|".join(map(re.escape, scanners))) if scanners else None,
        legacy_domains=frozenset(d.lower() for d in data.get("legacy_domains", [])),
        legacy_platform=data.get("legacy_platform", ""),
        phase2_login_prefix=data.get("phase2_login_prefix", ""),
        phase2_domain=data.get("phase2_domain", "").lower(),
        relaying_peers=frozenset(data.get("relaying_peers", [])),
        unregistered_destination=data.get("unregistered_destination", ""),
        forwarding_destination=data.get("forwarding_destination", ""),
        proxy_addresses=frozenset(data.get("proxy_addresses", [])),
        scanner_ban_limit=int(data.get("scanner_ban_limit", 60)),
        ban_table_limit=int(data.get("ban_table_limit", 10000)),
        number_plan=plan,
        dialin_numbers=frozenset(str(n) for n in data.get("dialin_numbers", [])),
        carriers=carriers,
        carrier_sets=tuple(carrier_sets),
        site_areas=tuple(site_areas),
        carrier_algorithm=int(data.get("carrier_algorithm", 8)),
        clip_allow=clip_allow,
        metrics=Metrics(
            address=str(metrics["address"]),
            port=int(metrics["port"]),
            allowed_peers=frozenset(str(a) for a in metrics["allowed_peers"]),
            wave_interval=int(metrics.get("wave_interval", 30)),
        )
        if metrics
        else None,
        carrier_probes=carrier_probes(data),
        dialog_key_file=str(data.get("dialog_key_file") or ""),
        dialog_lifetime=int(data.get("dialog_lifetime", 604800)),
    )


def carrier_probes(data: dict) -> tuple[CarrierProbe, ...]:
    """Each carrier's destination URI, written as dispatcher.list.j2 writes it, and the sets
    that hold it: dispatcher keeps a destination's state per set."""
    probes = []
    for carrier in data.get("carriers", []):
        name = str(carrier["name"])
        uri = (
            f"sip:{carrier['address']}:{int(carrier.get('port', 5060))}"
            f";transport={carrier.get('transport', 'udp')}"
        )
        setids = tuple(
            int(s["setid"]) for s in data.get("carrier_sets", []) if name in s.get("carriers", [])
        )
        probes.append(CarrierProbe(name=name, uri=uri, setids=setids))
    return tuple(probes)


def load_settings(path: Path) -> Settings:
    with open(path, encoding="utf-8") as handle:
        return settings_from_dict(json.load(handle))
