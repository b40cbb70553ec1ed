"""Monitoring: the Prometheus server on the proxy host scrapes Kamailio (xhttp_prom) and
Asterisk (res_prometheus) and shows real values after real SIP traffic; the proxy answers
HTTP only with its metrics, only on the metrics socket and only to Prometheus' address.
Each hostile request below goes to the real proxy."""

import socket

import pytest
from conftest import (
    DIALIN_DATABASE,
    PBX_CONTAINER,
    PROXY_CONTAINER,
    SUBSCRIBERS,
    dial_in,
    forget_failures,
    in_container,
    pbx,
    prometheus_query,
    wait_for_metric,
)
from sipwave_testlib import sipp

METRICS = ("127.0.21.11", 9494)
SIP_TCP = ("127.0.21.11", 5060)
# The kernel's source address for a loopback destination: Prometheus' (the allowed peer).
PROMETHEUS_SOURCE = "127.0.0.1"
STRANGER = "127.0.21.240"
WRONG_PIN = "11112222"
# What the dial-in AGI locks (4 failures within the hour in this scenario), read directly.
LOCKED_ACCOUNTS = (
    "SELECT COUNT(*) FROM (SELECT d.account_id FROM failure f JOIN dialin_number d"
    " ON d.number = f.caller WHERE f.at > strftime('%s','now') - 3600"
    " GROUP BY d.account_id HAVING COUNT(*) >= 4)"
)
ACCOUNT = "48221110003"
DOMAIN = "ip.tanifon.pl"


def http(request: bytes, target=METRICS, source=PROMETHEUS_SOURCE) -> bytes:
    """One raw HTTP request from ``source``; what came back before the server closed or 5 s."""
    with socket.create_connection(target, timeout=5, source_address=(source, 0)) as conn:
        conn.sendall(request)
        received = b""
        try:
            while chunk := conn.recv(65536):
                received += chunk
                if b"\r\n\r\n" in received and _complete(received):
                    break
        except TimeoutError:
            pass
    return received


def _complete(response: bytes) -> bool:
    head, _, body = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return False


def status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/") else 0


def kamailio_pids() -> str:
    return in_container(PROXY_CONTAINER, "pgrep", "-d,", "kamailio").stdout.strip()


def test_prometheus_scrapes_kamailio_asterisk_the_exporters_and_itself():
    up = wait_for_metric('count(up{job=~"kamailio|asterisk|prometheus|sipwave"} == 1) == 5')
    assert up, prometheus_query("up")


def test_a_pbx_lockout_shows_in_the_metrics():
    """Four wrong PINs lock the caller's account out (asterisk_dialin_lockout_failures); the
    exporter on the PBX counts it from the dial-in database."""
    caller = "+48601000004"
    forget_failures(caller, "+48601000006")
    for entries in ([WRONG_PIN] * 3, [WRONG_PIN]):
        call = dial_in(caller, entries=entries, expect="hungup")
        assert call.successful == 1, call.output
    locked = pbx("sqlite3", DIALIN_DATABASE, LOCKED_ACCOUNTS).strip()
    metric = f'sipwave_dialin_locked_accounts{{host="{PBX_CONTAINER}"}}'
    try:
        assert wait_for_metric(f"{metric} == {locked}") and int(locked) >= 1, (
            prometheus_query(metric),
            locked,
        )
    finally:
        forget_failures(caller, "+48601000006")


def test_the_newest_backup_shows_in_the_metrics():
    """test_health.py took a backup: its set's time (its manifest, written last), not 0."""
    newest = in_container(
        PROXY_CONTAINER, "sh", "-c",
        "stat -c %Y /var/backups/sipwave/sipwave-backup-*/MANIFEST.json | sort -n | tail -1",
    ).stdout.strip()  # fmt: skip
    assert newest, "no backup set on the proxy"
    metric = f'sipwave_backup_newest_timestamp_seconds{{host="{PROXY_CONTAINER}"}}'
    assert wait_for_metric(f"{metric} >= {newest}"), prometheus_query(metric)
    # Before the backup the proxy had none (0): the alert fired, and now it resolves.
    assert wait_for_metric('absent(ALERTS{alertname="SipwaveBackupTooOld"})', 20)


def test_a_register_raises_the_registration_counter():
    counter = f'kamailio_sipwave_registrations_total{{domain="{DOMAIN}"}}'
    before = prometheus_query(counter)
    count = float(before[0]["value"][1]) if before else 0.0
    row = [ACCOUNT, DOMAIN, sipp.credentials(ACCOUNT, SUBSCRIBERS[ACCOUNT]), "127.0.21.109:5099"]
    result = sipp.run("register.xml", "127.0.21.11:5060", "127.0.21.109", rows=[row])
    assert result.successful == 1, result.output
    assert wait_for_metric(f"{counter} >= {count + 1}"), prometheus_query(counter)


def test_a_silent_carrier_shows_down():
    assert wait_for_metric('kamailio_sipwave_carrier_up{carrier="silent"} == 0')


def test_kamailios_own_statistics_are_scraped():
    assert wait_for_metric(
        'kamailio_usrloc_registered_users{host="sipwave-molecule-asterisk-proxy"} >= 0'
    )


def test_asterisk_metrics_are_real():
    assert wait_for_metric('asterisk_core_uptime_seconds{job="asterisk"} > 0')


def test_the_silent_carrier_raises_its_alert():
    """Prometheus evaluates the role's rules: the carrier down alert is pending (it fires
    after two minutes), for that carrier only."""
    alerts = wait_for_metric('ALERTS{alertname="SipwaveCarrierDown"}')
    assert {a["metric"]["carrier"] for a in alerts} == {"silent"}, alerts
    assert not prometheus_query(
        'ALERTS{alertstate="firing", alertname=~"SipwaveProxyDown|SipwavePbxDown"}'
    )


def test_prometheus_gets_the_metrics():
    response = http(b"GET /metrics HTTP/1.0\r\nHost: proxy\r\n\r\n")
    assert status(response) == 200, response[:300]
    assert b'kamailio_sipwave_carrier_up{carrier="silent"} 0' in response


@pytest.mark.parametrize(
    ("request_bytes", "source", "target", "expected"),
    [
        # another address than Prometheus'
        (b"GET /metrics HTTP/1.0\r\nHost: proxy\r\n\r\n", STRANGER, METRICS, 403),
        # HTTP on the SIP port, even from Prometheus' address
        (b"GET /metrics HTTP/1.0\r\nHost: proxy\r\n\r\n", PROMETHEUS_SOURCE, SIP_TCP, 403),
        (b"GET /metrics HTTP/1.0\r\nHost: proxy\r\n\r\n", STRANGER, SIP_TCP, 403),
        # other methods and paths from Prometheus' address
        (
            b"POST /metrics HTTP/1.0\r\nHost: proxy\r\nContent-Length: 2\r\n\r\n{}",
            PROMETHEUS_SOURCE,
            METRICS,
            405,
        ),
        (
            b"PUT /metrics HTTP/1.0\r\nHost: proxy\r\nContent-Length: 0\r\n\r\n",
            PROMETHEUS_SOURCE,
            METRICS,
            405,
        ),
        (b"GET / HTTP/1.0\r\nHost: proxy\r\n\r\n", PROMETHEUS_SOURCE, METRICS, 404),
        (b"GET /RPC2 HTTP/1.0\r\nHost: proxy\r\n\r\n", PROMETHEUS_SOURCE, METRICS, 404),
        (b"GET /metrics/../RPC2 HTTP/1.0\r\nHost: proxy\r\n\r\n", PROMETHEUS_SOURCE, METRICS, 404),
        (b"GET /metrics?x=1 HTTP/1.0\r\nHost: proxy\r\n\r\n", PROMETHEUS_SOURCE, METRICS, 404),
        (b"GET /%ff%fe HTTP/1.0\r\nHost: proxy\r\n\r\n", PROMETHEUS_SOURCE, METRICS, 404),
        # not even a header: Kamailio's parser drops it, nothing is answered
        (b"GET /metrics HTTP/1.0\r\n\r\n", PROMETHEUS_SOURCE, METRICS, 0),
    ],
    ids=[
        "stranger",
        "sip-port",
        "stranger-sip-port",
        "post",
        "put",
        "root",
        "rpc",
        "traversal",
        "query",
        "escaped-bytes",
        "no-header",
    ],
)
def test_every_other_http_request_is_refused(request_bytes, source, target, expected):
    pids = kamailio_pids()
    response = http(request_bytes, target=target, source=source)
    assert status(response) == expected, response[:300]
    assert b"kamailio_" not in response
    assert kamailio_pids() == pids


def test_a_path_that_is_not_utf8_is_refused_and_kamailio_keeps_running():
    pids = kamailio_pids()
    response = http(b"GET /metrics\xff\xfe HTTP/1.0\r\nHost: proxy\r\n\r\n")
    assert status(response) in (0, 400, 404), response[:300]
    assert b"kamailio_" not in response
    assert kamailio_pids() == pids
    journal = in_container(PROXY_CONTAINER, "journalctl", "-u", "kamailio", "--since", "-2min")
    assert "Traceback" not in journal.stdout
