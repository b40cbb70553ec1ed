"""Reading a lab Prometheus server and a Prometheus exporter from the Molecule verifiers
(loopback addresses only; no proxy from the environment is ever used)."""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import urllib.request

_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def query(server: str, expression: str) -> list[dict]:
    """The instant vector of a PromQL expression on ``server`` (http://address:port):
    [{"metric": {...}, "value": [t, "v"]}]."""
    url = f"{server}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
    with _direct.open(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]["result"]


def wait_for(server: str, expression: str, timeout_s: float = 60.0) -> list[dict]:
    """Poll until ``expression`` (a PromQL filter such as ``x > 0``) has a result."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = query(server, expression)
        if result or time.monotonic() > deadline:
            return result
        time.sleep(1)


def scrape(url: str) -> dict[str, float]:
    """An exporter's samples as {"name{labels}": value} (the text format, comments skipped)."""
    with _direct.open(url, timeout=10) as response:
        text = response.read().decode("utf-8")
    samples = {}
    for line in text.splitlines():
        found = _SAMPLE.match(line)
        if found and not line.startswith("#"):
            samples[found.group(1) + (found.group(2) or "")] = float(found.group(3))
    return samples
