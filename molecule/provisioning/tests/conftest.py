"""Fixtures for the provisioning scenario: addresses, the sample export's devices, HTTPS and
TFTP clients bound to their own loopback addresses, playbook runs."""

from __future__ import annotations

import csv
import http.client
import socket
import ssl
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils.credentials import (
    device_token,
    generated_password,
)
from ansible_collections.sipwave.platform.plugins.module_utils.e164 import plan_from_dict
from ansible_collections.sipwave.platform.plugins.module_utils.legacy_export import read_export
from ansible_collections.sipwave.platform.plugins.module_utils.provisioning import (
    file_names,
)

PROJECT = Path(__file__).resolve().parents[3]
EXPORT = PROJECT / "inventories" / "lab" / "files" / "legacy_export.csv"
PROXY_CONTAINER = "sipwave-molecule-provisioning-proxy"
PROV_CONTAINER = "sipwave-molecule-provisioning-prov"
PROXY = "127.0.22.11:5060"
PROV_ADDRESS = "127.0.22.51"
SITE_SECRET = "molecule-provisioning-site-secret"
LEGACY_DOMAIN = "ip.tanifon.pl"
NEW_DOMAIN = "sip.sipwave.test"
WAVE1_DATE = "2026-11-16"
DAY_AFTER_WAVE1 = "2026-11-17"
CA_PATH = "/etc/sipwave-provisioning/tls/ca.crt"
PLAN = {"country_code": "48", "national_lengths": [9]}


@dataclass(frozen=True)
class Phone:
    login: str
    password: str  # empty where the export only has an HA1
    vendor: str
    model: str
    mac: str
    wave: str

    @property
    def token(self) -> str:
        return device_token(SITE_SECRET, self.mac)

    @property
    def files(self) -> list[str]:
        return [name for _, name in file_names(self.vendor, self.mac)]


def sample_phones() -> list[Phone]:
    export = read_export(str(EXPORT), plan_from_dict(PLAN))
    return [
        Phone(a.login, a.password, d.vendor, d.model, d.mac, a.wave)
        for a in export.accounts.values()
        for d in a.devices
    ]


PHONES = sample_phones()
# Moved in phase 1 by converge: wave 1 (by the export's column) and the wave "vendors".
VENDOR_WAVE = ("481200003", "481200007", "481200021")
WAVE1 = [p for p in PHONES if p.wave == "wave1"]
MIGRATED = WAVE1 + [p for p in PHONES if p.login in VENDOR_WAVE]
# The account that moves to phase 2 and whose phone (SIPp) is told to re-sync: a Yealink.
RESYNCED = next(p for p in WAVE1 if p.vendor == "yealink" and p.password)
HA1_ONLY = next(p for p in WAVE1 if not p.password)
NOT_MIGRATED = next(
    p for p in PHONES if p.wave == "wave2" and p.password and p.login not in VENDOR_WAVE
)


def one_per_vendor() -> list[Phone]:
    chosen: dict[str, Phone] = {}
    for phone in MIGRATED:
        if phone.password and phone.login != RESYNCED.login:
            chosen.setdefault(phone.vendor, phone)
    return [chosen[v] for v in sorted(chosen)]


def sample_secrets() -> list[str]:
    """Every password, HA1, generated phase-2 password and device token of the export."""
    found = set()
    with EXPORT.open(encoding="utf-8", errors="replace", newline="") as handle:
        for row in csv.DictReader(handle):
            found.update(s for s in (row.get("password"), row.get("ha1")) if s and len(s) >= 6)
    found.update(generated_password(SITE_SECRET, p.login) for p in PHONES if not p.password)
    found.update(p.token for p in PHONES)
    return sorted(found)


# -- HTTPS --------------------------------------------------------------------------------------


def in_container(container: str, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", "exec", container, *command], capture_output=True, text=True)


@pytest.fixture(scope="session")
def tls_context(tmp_path_factory) -> ssl.SSLContext:
    ca = in_container(PROV_CONTAINER, "cat", CA_PATH)
    assert ca.returncode == 0, ca.stderr
    path = tmp_path_factory.mktemp("ca") / "ca.crt"
    path.write_text(ca.stdout)
    return ssl.create_default_context(cafile=str(path))


class Client:
    """HTTPS (or HTTP) requests from one loopback address, reconnecting when nginx closes
    the connection (it does on a reload, e.g. after a ban)."""

    def __init__(self, source: str, context: ssl.SSLContext | None, port: int = 443) -> None:
        self.source = source
        self.context = context
        self.port = port
        self.connection = None

    def _connect(self):
        if self.context is None:
            return http.client.HTTPConnection(
                PROV_ADDRESS, self.port, timeout=10, source_address=(self.source, 0)
            )
        return http.client.HTTPSConnection(
            PROV_ADDRESS,
            self.port,
            timeout=10,
            context=self.context,
            source_address=(self.source, 0),
        )

    def get(self, path: str) -> tuple[int, bytes]:
        for _attempt in range(3):
            if self.connection is None:
                self.connection = self._connect()
            try:
                self.connection.request("GET", path)
                response = self.connection.getresponse()
                body = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self.close()
                return response.status, body
            except (http.client.HTTPException, OSError):
                self.close()
        raise AssertionError(f"GET {path} failed three times")

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


# -- TFTP (RFC 1350 read request, octet mode) ---------------------------------------------------


def tftp_get(name: str, source: str = "127.0.22.203") -> tuple[bool, bytes]:
    """(found, content) of a file over TFTP; found is False on an error packet."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(5)
    sock.bind((source, 0))
    sock.sendto(struct.pack("!H", 1) + name.encode() + b"\0octet\0", (PROV_ADDRESS, 69))
    content = b""
    expected = 1
    try:
        while True:
            packet, peer = sock.recvfrom(4 + 512)
            opcode = struct.unpack("!H", packet[:2])[0]
            if opcode == 5:
                return False, packet[4:]
            block = struct.unpack("!H", packet[2:4])[0]
            sock.sendto(struct.pack("!HH", 4, block), peer)
            if block == expected:
                content += packet[4:]
                expected += 1
                if len(packet) - 4 < 512:
                    return True, content
    finally:
        sock.close()


# -- playbooks ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def secrets() -> list[str]:
    return sample_secrets()
