"""Prometheus metrics: the HTTP requests xhttp hands to the router, and the sipwave metrics.

xhttp passes every HTTP request that reaches any TCP socket of Kamailio to
``ksr_xhttp_event`` (sipwave_kemi.py). Only a GET of ``/metrics`` on the metrics socket from
an allowed peer (settings ``metrics``) is answered with the metrics (xhttp_prom); everything
else is refused: a request on another socket (the SIP port), from another address, with
another method or for another path. A source the ban table holds gets no answer, and every
refused request counts towards the flood limit like a SIP request.

The sipwave metrics (their definitions are in kamailio.cfg; xhttp_prom prefixes
``kamailio_``): accepted REGISTERs per served domain (counted when the registrar saved
them), each carrier's dispatcher state, and per wave the accounts served here and how many of
them have a registered contact, read from the database at most every ``wave_interval``
seconds per worker.
"""

import time

import KSR

from sipwave_router.keys import FACT_SEPARATOR, HTABLE_BANNED, PV_NULL

# The source and its ban entry, the socket the request arrived on, the method and the path
# (with any query), in one read.
HTTP_FACTS = (
    "$_s("
    + FACT_SEPARATOR.join(("$si", f"$sht({HTABLE_BANNED}=>$si)", "$Ri", "$Rp", "$rm", "$hu"))
    + ")"
)
METRICS_PATH = "/metrics"
TEXT = "text/plain"
REGISTRATIONS = "sipwave_registrations_total"
CARRIER_UP = "sipwave_carrier_up"
WAVE_ACCOUNTS = "sipwave_wave_accounts"
WAVE_REGISTERED = "sipwave_wave_registered"
# sqlops connection (kamailio.cfg) and the XAVP the rows land in.
SQL_CONNECTION = "sipwave"
WAVE_ROWS = "sipwave_waves"
# The engine's live states (module_utils/wave/model.py LIVE_STATES; a unit test holds them
# equal): the accounts this proxy serves. An account counts as registered when a contact of
# its current identity is in usrloc's location table (written back every usrloc timer).
LIVE_STATES = ("consent_pending", "phase1", "phase2")
WAVE_QUERY = (
    "SELECT a.wave AS wave, COUNT(*) AS accounts, COUNT(l.username) AS registered "
    "FROM sipwave_account a LEFT JOIN "
    "(SELECT DISTINCT username, lower(domain) AS domain FROM location) l "
    "ON l.username = a.current_username AND l.domain = lower(a.current_domain) "
    "WHERE a.state IN (" + ", ".join(f"'{state}'" for state in LIVE_STATES) + ") GROUP BY a.wave"
)
MAX_WAVES = 1000


class MetricsRoutes:
    """Mixed into the Router: ``self.settings`` is the router's Settings."""

    _next_wave_count = 0.0
    _waves_shown: frozenset[str] = frozenset()

    def xhttp_event(self, _event: str) -> int:
        try:
            facts = KSR.pv.get(HTTP_FACTS)
            if facts is None:
                _reply(400, "Bad Request")
                return 1
            source, banned, address, port, method, path = facts.split(FACT_SEPARATOR, 5)
            if banned == PV_NULL:
                self.answer_http(source, address, port, method, path)
        except UnicodeDecodeError:
            _reply(400, "Bad Request")
        return 1

    def answer_http(self, source: str, address: str, port: str, method: str, path: str) -> None:
        metrics = self.settings.metrics
        allowed = metrics is not None and source in metrics.allowed_peers
        if not allowed and source not in self._flood_exempt and KSR.pike.pike_check_req() < 0:
            self.ban(source, "request flood")
            return
        on_metrics_socket = metrics is not None and (address, port) == (
            metrics.address,
            str(metrics.port),
        )
        if not on_metrics_socket or not allowed:
            _reply(403, "Forbidden")
        elif method != "GET":
            _reply(405, "Method Not Allowed")
        elif path != METRICS_PATH:
            _reply(404, "Not Found")
        else:
            self.update_gauges()
            KSR.xhttp_prom.dispatch()

    def count_registration(self, domain: str) -> None:
        """One more REGISTER saved for ``domain`` (a served domain: bounded labels)."""
        if self.settings.metrics is not None:
            KSR.xhttp_prom.counter_inc_l1(REGISTRATIONS, 1, domain)

    def update_gauges(self) -> None:
        for probe in self.settings.carrier_probes:
            up = any(KSR.dispatcher.ds_is_active_uri(s, probe.uri) > 0 for s in probe.setids)
            KSR.xhttp_prom.gauge_set_l1(CARRIER_UP, "1" if up else "0", probe.name)
        now = time.monotonic()
        if now >= self._next_wave_count:
            self._next_wave_count = now + self.settings.metrics.wave_interval
            self.count_waves()

    def count_waves(self) -> None:
        if KSR.sqlops.sql_xquery(SQL_CONNECTION, WAVE_QUERY, WAVE_ROWS) < 0:
            return
        shown = set()
        for index in range(MAX_WAVES):
            row = KSR.pv.get(f"$xavp({WAVE_ROWS}[{index}]=>wave)")
            if row is None:
                break
            wave = str(row)
            for gauge, column in ((WAVE_ACCOUNTS, "accounts"), (WAVE_REGISTERED, "registered")):
                value = KSR.pv.get(f"$xavp({WAVE_ROWS}[{index}]=>{column})")
                KSR.xhttp_prom.gauge_set_l1(gauge, str(value or 0), wave)
            shown.add(wave)
        # A wave rolled back has no live account left: it shows 0, not its last count.
        for wave in self._waves_shown - shown:
            KSR.xhttp_prom.gauge_set_l1(WAVE_ACCOUNTS, "0", wave)
            KSR.xhttp_prom.gauge_set_l1(WAVE_REGISTERED, "0", wave)
        self._waves_shown = frozenset(shown | self._waves_shown)
        KSR.pvx.xavp_rm(WAVE_ROWS)


def _reply(code: int, reason: str) -> None:
    KSR.xhttp.xhttp_reply(code, reason, TEXT, f"{code} {reason}\n")
