"""The router's HTTP route (xhttp) and its metrics (xhttp_prom), through the KSR stub.

The live requests, hostile ones included, are in molecule/asterisk/tests/test_monitoring.py.
"""

import importlib

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils.wave.model import LIVE_STATES
from test_router import request

PROMETHEUS = "127.0.0.1"
METRICS = ("127.0.20.11", "9494")
SETTINGS = {
    "domains": ["ip.tanifon.pl"],
    "trusted_peers": ["127.0.20.21"],
    "metrics": {"address": METRICS[0], "port": 9494, "allowed_peers": [PROMETHEUS],
                "wave_interval": 30},
    "carriers": [
        {"name": "national", "address": "127.0.20.31", "prefixes": ["+48"]},
        {"name": "local", "address": "127.0.20.33", "port": 5070, "transport": "tcp",
         "prefixes": ["+48"]},
    ],
    "carrier_sets": [
        {"prefix": "+48", "site": "", "setid": 1, "carriers": ["national"]},
        {"prefix": "+48", "site": "gdansk", "setid": 2, "carriers": ["local", "national"]},
    ],
}  # fmt: skip


def make_router(settings: dict):
    package = importlib.import_module("sipwave_router")
    from sipwave_router.settings import settings_from_dict

    return package.Router(settings_from_dict(settings))


@pytest.fixture
def metrics_router(ksr):
    return make_router(SETTINGS)


def http(ksr, *, source=PROMETHEUS, socket=METRICS, method="GET", path="/metrics"):
    ksr.pvars.update({"$si": source, "$Ri": socket[0], "$Rp": socket[1], "$rm": method,
                      "$hu": path})  # fmt: skip


def waves(ksr, rows: list[tuple[str, int, int]]) -> None:
    ksr.pvars.update(
        {f"$xavp(sipwave_waves[{i}]=>{column})": value
         for i, row in enumerate(rows)
         for column, value in zip(("wave", "accounts", "registered"), row, strict=True)}
    )  # fmt: skip


def test_prometheus_gets_the_metrics(ksr, metrics_router):
    http(ksr)
    metrics_router.xhttp_event("xhttp:request")
    assert ksr.called("xhttp_prom.dispatch") == [()]
    assert ksr.called("xhttp.xhttp_reply") == []


@pytest.mark.parametrize(
    ("request_facts", "reply"),
    [
        ({"source": "127.0.20.99"}, (403, "Forbidden")),
        ({"socket": ("127.0.20.11", "5060")}, (403, "Forbidden")),
        ({"socket": ("127.0.0.1", "9494")}, (403, "Forbidden")),
        ({"method": "POST"}, (405, "Method Not Allowed")),
        ({"method": "HEAD"}, (405, "Method Not Allowed")),
        ({"path": "/"}, (404, "Not Found")),
        ({"path": "/metrics/"}, (404, "Not Found")),
        ({"path": "/metrics?name[]=x"}, (404, "Not Found")),
        ({"path": "/RPC2"}, (404, "Not Found")),
        ({"path": "/metrics\n|GET"}, (404, "Not Found")),
    ],
)
def test_every_other_http_request_is_refused(ksr, metrics_router, request_facts, reply):
    http(ksr, **request_facts)
    metrics_router.xhttp_event("xhttp:request")
    assert ksr.called("xhttp_prom.dispatch") == []
    assert [args[:2] for args in ksr.called("xhttp.xhttp_reply")] == [reply]


def test_a_banned_source_gets_no_answer(ksr, metrics_router):
    http(ksr, source="127.0.20.99")
    ksr.htables["ipban"] = {"127.0.20.99": 1}
    metrics_router.xhttp_event("xhttp:request")
    assert ksr.called("xhttp.xhttp_reply") == []
    assert ksr.called("pike.pike_check_req") == []


def test_an_http_flood_is_banned_like_a_sip_one(ksr, metrics_router):
    http(ksr, source="127.0.20.99")
    ksr.returns["pike.pike_check_req"] = -1
    metrics_router.xhttp_event("xhttp:request")
    assert ksr.htables["ipban"] == {"127.0.20.99": 1}
    assert ksr.called("xhttp.xhttp_reply") == []


def test_the_allowed_peer_is_never_flood_checked(ksr, metrics_router):
    http(ksr)
    ksr.returns["pike.pike_check_req"] = -1
    metrics_router.xhttp_event("xhttp:request")
    assert ksr.called("pike.pike_check_req") == []
    assert ksr.called("xhttp_prom.dispatch") == [()]


def test_a_path_that_is_not_utf8_gets_400(ksr, metrics_router, monkeypatch):
    http(ksr)

    def undecodable(_name):
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    monkeypatch.setattr(ksr.pv, "get", undecodable)
    assert metrics_router.xhttp_event("xhttp:request") == 1
    assert [args[:2] for args in ksr.called("xhttp.xhttp_reply")] == [(400, "Bad Request")]


def test_without_metrics_every_http_request_is_refused(ksr):
    router = make_router({k: v for k, v in SETTINGS.items() if k != "metrics"})
    http(ksr)
    router.xhttp_event("xhttp:request")
    assert ksr.called("xhttp_prom.dispatch") == []
    assert [args[:2] for args in ksr.called("xhttp.xhttp_reply")] == [(403, "Forbidden")]


def test_each_carrier_shows_its_dispatcher_state(ksr, metrics_router):
    # national is active in set 2 only, local in none of its sets
    ksr.returns["dispatcher.ds_is_active_uri"] = lambda setid, uri: (
        1 if (setid, uri) == (2, "sip:127.0.20.31:5060;transport=udp") else -1
    )
    http(ksr)
    metrics_router.xhttp_event("xhttp:request")
    assert set(ksr.called("dispatcher.ds_is_active_uri")) >= {
        (1, "sip:127.0.20.31:5060;transport=udp"),
        (2, "sip:127.0.20.33:5070;transport=tcp"),
    }
    assert ksr.called("xhttp_prom.gauge_set_l1")[:2] == [
        ("sipwave_carrier_up", "1", "national"),
        ("sipwave_carrier_up", "0", "local"),
    ]


def test_each_wave_shows_its_accounts_and_registered_ones(ksr, metrics_router):
    waves(ksr, [("wave1", 40, 31), ("wave2", 5, 0)])
    http(ksr)
    metrics_router.xhttp_event("xhttp:request")
    (query,) = ksr.called("sqlops.sql_xquery")
    assert query[0] == "sipwave" and query[2] == "sipwave_waves"
    gauges = [g for g in ksr.called("xhttp_prom.gauge_set_l1") if g[0] != "sipwave_carrier_up"]
    assert gauges == [
        ("sipwave_wave_accounts", "40", "wave1"),
        ("sipwave_wave_registered", "31", "wave1"),
        ("sipwave_wave_accounts", "5", "wave2"),
        ("sipwave_wave_registered", "0", "wave2"),
    ]
    assert ksr.called("pvx.xavp_rm") == [("sipwave_waves",)]


def test_the_waves_are_counted_once_per_interval(ksr, metrics_router):
    waves(ksr, [("wave1", 40, 31)])
    for _ in range(3):
        http(ksr)
        metrics_router.xhttp_event("xhttp:request")
    assert len(ksr.called("sqlops.sql_xquery")) == 1
    assert len(ksr.called("xhttp_prom.dispatch")) == 3


def test_a_wave_rolled_back_shows_zero(ksr, metrics_router, monkeypatch):
    waves(ksr, [("wave1", 40, 31)])
    metrics_router.count_waves()
    ksr.pvars.clear()
    ksr.calls.clear()
    metrics_router.count_waves()
    assert ksr.called("xhttp_prom.gauge_set_l1") == [
        ("sipwave_wave_accounts", "0", "wave1"),
        ("sipwave_wave_registered", "0", "wave1"),
    ]


def test_the_wave_query_counts_the_engines_live_accounts(ksr):
    metrics = importlib.import_module("sipwave_router.metrics")
    assert set(metrics.LIVE_STATES) == set(LIVE_STATES)


def test_a_saved_register_is_counted_for_its_domain(ksr, metrics_router):
    request(ksr, "REGISTER")
    ksr.returns["auth_db.auth_check"] = 1
    metrics_router.request_route()
    assert ksr.called("xhttp_prom.counter_inc_l1") == [
        ("sipwave_registrations_total", 1, "ip.tanifon.pl")
    ]


def test_a_register_not_saved_is_not_counted(ksr, metrics_router):
    request(ksr, "REGISTER")
    ksr.returns["auth_db.auth_check"] = 1
    ksr.returns["registrar.save"] = -1
    metrics_router.request_route()
    assert ksr.called("xhttp_prom.counter_inc_l1") == []


def test_without_metrics_a_register_touches_no_metric(ksr, router):
    request(ksr, "REGISTER")
    ksr.returns["auth_db.auth_check"] = 1
    router.request_route()
    assert ksr.called("registrar.save") == [("location", 0)]
    assert not [name for name, _ in ksr.calls if name.startswith("xhttp")]
