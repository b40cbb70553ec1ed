"""An office of 50 phones behind one address re-syncs at once (as after phase 2, when every
phone is told to): each phone asks for what its vendor's firmware asks for, first under
/common/ (where the TFTP common files send a phone that has no token yet), then under its
token path, extra names included. None of it may be rate-limited or counted as a miss, so
the office is never banned, while an enumerator on another address that asks for the same
vendor names with made-up tokens at the same time is banned as before.

Runs before test_provisioning.py (file order), right after converge.
"""

from __future__ import annotations

import secrets as random_tokens
import threading
import time

import pytest
from conftest import MIGRATED, PROV_CONTAINER, Client, in_container

OFFICE_ADDRESS = "127.0.22.210"  # not in provisioning_ban_ignore
ENUMERATOR = "127.0.22.205"
OFFICE_SIZE = 50
MISSES_LOG = "/var/log/nginx/sipwave-misses.log"
BAN_FILE = "/etc/nginx/sipwave-banned.conf"


def vendor_requests(vendor: str, mac: str) -> list[str]:
    """What a phone of ``vendor`` asks its provisioning URL for, in order (vendor manuals;
    model-specific names with one real model of each vendor). The device's own files are
    among them."""
    mac, mac_upper = mac.lower(), mac.upper()
    return {
        # boot files (MAC-oriented, common), the model's common file, the MAC-oriented file
        "yealink": [f"{mac}.boot", "y000000000000.boot", "y000000000028.cfg", f"{mac}.cfg"],
        # master file, the application (split per part number, then sip.ld), the per-phone
        # file, overrides, licences and directories
        "polycom": [
            f"{mac}.cfg",
            "3111-46135-002.sip.ld",
            "sip.ld",
            f"{mac}-phone.cfg",
            f"{mac}-web.cfg",
            f"{mac}-license.cfg",
            "000000000000-license.cfg",
            f"{mac}-directory.xml",
            "000000000000-directory.xml",
        ],
        "grandstream": [f"cfg{mac}", f"cfg{mac}.xml", "cfggxp2170.xml", "cfg.xml"],
        "snom": ["snomD785.htm", f"snomD785-{mac_upper}.htm", f"{mac_upper}.xml"],
        "cisco": ["spa504G.cfg", f"{mac}.xml"],
        "fanvil": ["f0x4u.cfg", f"{mac}.cfg"],
        "gigaset": [f"{mac_upper}.xml"],
    }[vendor]


# Before its first configuration only the common files are there for a phone; the names
# they point to (y000000000000.cfg, sipwave-common.cfg, cfg.xml) are fetched there too.
COMMON_EXTRA = {
    "yealink": ["y000000000000.cfg"],
    "polycom": ["000000000000.cfg", "sipwave-common.cfg"],
}


def office_phones() -> list:
    """OFFICE_SIZE migrated phones with plaintext passwords, every vendor among them."""
    by_vendor: dict[str, list] = {}
    for phone in MIGRATED:
        if phone.password:
            by_vendor.setdefault(phone.vendor, []).append(phone)
    chosen = []
    while len(chosen) < OFFICE_SIZE:
        for phones in by_vendor.values():
            if phones and len(chosen) < OFFICE_SIZE:
                chosen.append(phones.pop(0))
    return chosen


PHONES = office_phones()


def resync(phone, context, results: dict, barrier: threading.Barrier) -> None:
    client = Client(OFFICE_ADDRESS, context)
    answers = []
    barrier.wait()  # every phone starts at the same moment
    for name in vendor_requests(phone.vendor, phone.mac) + COMMON_EXTRA.get(phone.vendor, []):
        status, _ = client.get(f"/common/{name}")
        answers.append((f"/common/{name}", status, b""))
    for name in vendor_requests(phone.vendor, phone.mac):
        status, body = client.get(f"/p/{phone.token}/{name}")
        answers.append((f"/p/-/{name}", status, body))
    client.close()
    results[phone.mac] = answers


def enumerate_vendor_names(context, stop: threading.Event, statuses: dict) -> None:
    """The office's vendor names under made-up tokens, until stopped."""
    client = Client(ENUMERATOR, context)
    index = 0
    while not stop.is_set():
        phone = PHONES[index % len(PHONES)]
        names = vendor_requests(phone.vendor, phone.mac)
        status, _ = client.get(f"/p/{random_tokens.token_hex(16)}/{names[index % len(names)]}")
        statuses[status] = statuses.get(status, 0) + 1
        index += 1
    client.close()


def misses_of(address: str) -> int:
    log = in_container(PROV_CONTAINER, "cat", MISSES_LOG).stdout
    return sum(1 for line in log.splitlines() if line.split()[1:2] == [address])


@pytest.fixture(scope="module")
def office(tls_context):
    """The 50 phones fetch at once from one address while the enumerator runs; then the
    time fail2ban needs to read its log (it polls every second) passes."""
    results: dict[str, list] = {}
    enumerated: dict[int, int] = {}
    barrier = threading.Barrier(len(PHONES))
    stop = threading.Event()
    enumerator = threading.Thread(
        target=enumerate_vendor_names, args=(tls_context, stop, enumerated)
    )
    threads = [
        threading.Thread(target=resync, args=(phone, tls_context, results, barrier))
        for phone in PHONES
    ]
    enumerator.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    time.sleep(5)
    stop.set()
    enumerator.join(timeout=60)
    banned = in_container(PROV_CONTAINER, "fail2ban-client", "status", "sipwave-provisioning")
    ban_list = in_container(PROV_CONTAINER, "cat", BAN_FILE).stdout
    return results, enumerated, banned.stdout, ban_list


def test_the_office_has_50_phones_of_every_vendor():
    assert len({phone.mac for phone in PHONES}) == OFFICE_SIZE
    assert {phone.vendor for phone in PHONES} == {p.vendor for p in MIGRATED}


def test_every_phone_of_the_office_gets_all_its_files(office):
    results, _, _, _ = office
    assert len(results) == OFFICE_SIZE
    missing = []
    for phone in PHONES:
        served = {path: (status, body) for path, status, body in results[phone.mac]}
        for name in phone.files:
            status, _ = served[f"/p/-/{name}"]
            if status != 200:
                missing.append((phone.vendor, name, status))
        if not any(phone.login.encode() in body for status, body in served.values()):
            missing.append((phone.vendor, "its login", None))
    assert not missing, missing


def test_every_other_name_a_phone_asks_for_is_answered_not_limited(office):
    results, _, _, _ = office
    answered = {}
    for answers in results.values():
        for _, status, _ in answers:
            answered[status] = answered.get(status, 0) + 1
    assert set(answered) <= {200, 404}, answered  # never 429 (rate limit) nor 403 (banned)


def test_none_of_the_offices_requests_counts_as_a_miss(office):
    assert misses_of(OFFICE_ADDRESS) == 0


def test_the_office_is_not_banned_and_still_served(office, tls_context):
    _, _, banned, ban_list = office
    assert OFFICE_ADDRESS not in banned
    assert OFFICE_ADDRESS not in ban_list
    phone = PHONES[0]
    client = Client(OFFICE_ADDRESS, tls_context)
    status, _ = client.get(f"/p/{phone.token}/{phone.files[0]}")
    client.close()
    assert status == 200


def test_an_enumerator_asking_for_the_same_names_with_made_up_tokens_is_banned(office):
    _, enumerated, banned, ban_list = office
    assert enumerated.get(200, 0) == 0, enumerated
    assert enumerated.get(429, 0) > 0, enumerated
    assert ENUMERATOR in banned
    assert f"{ENUMERATOR} 1;" in ban_list
