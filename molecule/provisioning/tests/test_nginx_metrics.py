"""nginx's counters reach Prometheus: stub_status on a listener of its own (127.0.22.51:8080,
only for 127.0.0.1, the source of the exporter's loopback connections), Debian's nginx
exporter on 127.0.22.51:9113 and the Prometheus server of this host. A phone's fetch shows
in the requests and connections; the phones' ports never serve the status page; a stopped
nginx raises SipwaveProvisioningDown. Every request goes to the real nginx."""

from __future__ import annotations

import http.client

import pytest
from conftest import PROV_ADDRESS, PROV_CONTAINER, Client, in_container
from sipwave_testlib import prometheus

PHONE_ADDRESS = "127.0.22.202"  # provisioning_ban_ignore: its 404s here ban nobody
STRANGER = "127.0.22.240"
EXPORTER = f"http://{PROV_ADDRESS}:9113/metrics"
PROMETHEUS = f"http://{PROV_ADDRESS}:9090"
STATUS = (PROV_ADDRESS, 8080)
COMMON = "/common/sipwave-common.cfg"
HOST = f'job="nginx", host="{PROV_CONTAINER}"'


def plain_get(target: tuple[str, int], path: str, source: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(*target, timeout=10, source_address=(source, 0))
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_the_status_listener_answers_the_exporters_address():
    status, body = plain_get(STATUS, "/stub_status", "127.0.0.1")
    assert status == 200, body
    assert body.startswith(b"Active connections:"), body


@pytest.mark.parametrize("path", ["/stub_status", "/stub_status/", "/", "/nginx_status"])
def test_a_stranger_gets_nothing_from_the_status_listener(path):
    status, body = plain_get(STATUS, path, STRANGER)
    assert status in (403, 404), body
    assert b"Active connections" not in body


@pytest.mark.parametrize("source", [PHONE_ADDRESS, "127.0.0.1"])
@pytest.mark.parametrize("path", ["/stub_status", "/stub_status/", "/common/../stub_status"])
def test_the_phones_ports_never_serve_the_status_page(tls_context, source, path):
    """Not over HTTPS nor plain HTTP, not even from the address the status listener allows."""
    for client in (Client(source, tls_context), Client(source, None, port=80)):
        try:
            status, body = client.get(path)
        finally:
            client.close()
        assert status in (400, 404), (client.port, body)
        assert b"Active connections" not in body


def test_the_status_listener_is_its_own_socket():
    listening = in_container(PROV_CONTAINER, "ss", "-Hltnp").stdout
    nginx = {line.split()[3] for line in listening.splitlines() if '"nginx"' in line}
    assert nginx == {f"{PROV_ADDRESS}:443", f"{PROV_ADDRESS}:80", f"{PROV_ADDRESS}:8080"}, nginx


def test_a_provisioning_fetch_shows_in_the_exporters_counters(tls_context):
    before = prometheus.scrape(EXPORTER)
    assert before["nginx_up"] == 1, before
    phone = Client(PHONE_ADDRESS, tls_context)
    try:
        for _ in range(3):
            status, body = phone.get(COMMON)
            assert status == 200 and body, body
        # the phone's connection is still open (keep-alive) while the exporter reads nginx
        during = prometheus.scrape(EXPORTER)
    finally:
        phone.close()
    requests = during["nginx_http_requests_total"] - before["nginx_http_requests_total"]
    assert requests >= 3, (before, during)
    assert during["nginx_connections_active"] >= 2, during  # the phone's and the exporter's
    assert during["nginx_connections_accepted"] > before["nginx_connections_accepted"]


def test_prometheus_scrapes_the_nginx_exporter(tls_context):
    phone = Client(PHONE_ADDRESS, tls_context)
    try:
        assert phone.get(COMMON)[0] == 200
    finally:
        phone.close()
    served = prometheus.scrape(EXPORTER)["nginx_http_requests_total"]
    assert prometheus.wait_for(PROMETHEUS, f"up{{{HOST}}} == 1"), prometheus.query(PROMETHEUS, "up")
    metric = f"nginx_http_requests_total{{{HOST}}}"
    assert prometheus.wait_for(PROMETHEUS, f"{metric} >= {served}"), prometheus.query(
        PROMETHEUS, metric
    )
    assert not prometheus.query(PROMETHEUS, 'ALERTS{alertname="SipwaveProvisioningDown"}')


def test_a_stopped_nginx_raises_the_provisioning_alert():
    stopped = in_container(PROV_CONTAINER, "systemctl", "stop", "nginx")
    assert stopped.returncode == 0, stopped.stderr
    try:
        assert prometheus.wait_for(PROMETHEUS, f"nginx_up{{{HOST}}} == 0", 30)
        alerts = prometheus.wait_for(PROMETHEUS, 'ALERTS{alertname="SipwaveProvisioningDown"}', 30)
        assert [a["metric"]["host"] for a in alerts] == [PROV_CONTAINER], alerts
    finally:
        started = in_container(PROV_CONTAINER, "systemctl", "start", "nginx")
    assert started.returncode == 0, started.stderr
    assert prometheus.wait_for(PROMETHEUS, f"nginx_up{{{HOST}}} == 1", 30)
