"""Calls to and from the public network through the real proxy: carriers of every site and
of one site, caller ID, failover, inbound calls and call records.

The carriers are UDP responders on their own loopback addresses (kamailio_carriers in
molecule.yml): each answers OPTIONS probes, answers INVITEs with the code the test chose and
keeps every request it received, so that a test checks what the carrier saw.
"""

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from conftest import ACCOUNTS, LEGACY_DOMAIN, NEW_DOMAIN, in_container
from sip_responder import SipResponder
from sipwave_testlib import sipp
from sipwave_testlib.dialogs import DIALOG_TOKEN
from test_attacks import PROXY_ADDRESS, PROXY_PORT, authenticated, phone, reply, status

CARRIER_A = "127.0.20.31"
CARRIER_B = "127.0.20.32"
# The Gdansk site's own carriers for +4822 (kamailio_sites, kamailio_carriers in molecule.yml).
CARRIER_C = "127.0.20.33"
CARRIER_D = "127.0.20.34"
STRANGER = "127.0.20.201"
HANDSETS = ("127.0.20.202", "127.0.20.203")
CALLER_SOCKETS = iter(f"127.0.20.{n}" for n in range(210, 250))
DATABASE = "/var/lib/kamailio/sipwave.sqlite"
ACCOUNT = f"481234001@{LEGACY_DOMAIN}"
OWN_NUMBER = "+48221110001"
LEGACY_NUMBER = "+48225550999"  # on 481234001's CLIP allow-list (molecule.yml)
UNREGISTERED_NUMBER = "+48221110003"  # 481234002's, never registered here
CALLED = "+48225550100"
# Numbers of the scenario's accounts, as the wave engine would write them (dbaliases): the
# legacy accounts are in Warsaw's area, which has no carrier of its own; the phase-2 account
# "new" is in Gdansk's.
NUMBERS = {
    "48221110001": ("481234001", LEGACY_DOMAIN),
    "48221110002": ("481234001", LEGACY_DOMAIN),
    "48221110003": ("481234002", LEGACY_DOMAIN),
    "48581110004": ("tnf481234003", NEW_DOMAIN),
}
GDANSK_ACCOUNT = f"tnf481234003@{NEW_DOMAIN}"
GDANSK_NUMBER = "+48581110004"
# 481234002's own number is still at the old operator: it holds a temporary number, and both
# accounts are in a department (sipwave_account, sipwave_number as the wave engine writes them).
TEMPORARY_NUMBER = "+48225559000"
DEPARTMENTS = {"481234001": "sales", "481234002": "support"}
# Sites of the accounts' numbers (kamailio_sites in molecule.yml), as the call records name them.
WARSAW, GDANSK = "warsaw", "gdansk"
PROBE_INTERVAL_S = 1  # kamailio_carrier_probe_interval
PROBE_TIMEOUT_S = 4  # kamailio_tm_fr_timer_ms


class Carrier(SipResponder):
    """A carrier's SIP side: answers OPTIONS 200, INVITE with ``invite_answer``, and a BYE as
    a carrier does: 200 for a call it answered (Call-ID and tags of that dialog, either
    direction), 481 for anything else."""

    def __init__(self, address: str):
        super().__init__((address, 5060))
        self.invite_answer = b"200 OK"
        self.dialogs: set[tuple[str, frozenset]] = set()

    def answer(self, request: bytes) -> bytes:
        if request.startswith(b"INVITE "):
            contact = f"Contact: <sip:carrier@{self.address[0]}:5060>".encode()
            # As a UAS answers: the Record-Route the proxy put in, so the caller's ACK and BYE
            # come back through the proxy.
            head = request.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
            routes = [h for h in head if h.lower().startswith(b"record-route:")]
            if self.invite_answer.startswith(b"200"):
                self.dialogs.add(dialog_of(request, UAS_TAG))
            return reply(request, self.invite_answer, contact, *routes)
        if request.startswith(b"BYE "):
            known = dialog_of(request, "") in self.dialogs
            return reply(request, b"200 OK" if known else b"481 Call Does Not Exist")
        return reply(request, b"200 OK")

    def invites(self) -> list[bytes]:
        return [r for r in self.received if r.startswith(b"INVITE ")]


UAS_TAG = "uas"  # the To tag of test_attacks.reply()


def dialog_of(message: bytes, to_tag: str) -> tuple[str, frozenset]:
    """(Call-ID, {From tag, To tag}) of a message; ``to_tag`` when it has none yet."""
    text = message.decode(errors="replace")
    call_id = re.search(r"^Call-ID:\s*(\S+)", text, re.M | re.I)
    tags = [re.search(rf"^{name}:.*?;tag=([^;>\s]+)", text, re.M | re.I) for name in ("From", "To")]
    found = [tag[1] if tag else to_tag for tag in tags]
    return (call_id[1] if call_id else ""), frozenset(found)


@pytest.fixture(scope="module")
def carriers() -> Iterator[dict[str, Carrier]]:
    addresses = {"a": CARRIER_A, "b": CARRIER_B, "c": CARRIER_C, "d": CARRIER_D}
    started = {name: Carrier(address) for name, address in addresses.items()}
    for carrier in started.values():
        carrier.start()
    for address in addresses.values():
        wait_for_carrier_state(address, active=True)
    yield started
    for carrier in started.values():
        carrier.stop()


@pytest.fixture(autouse=True)
def fresh_carriers(carriers) -> None:
    for carrier in carriers.values():
        carrier.received.clear()
        carrier.invite_answer = b"200 OK"


def sql(statement: str) -> str:
    result = in_container("sqlite3", DATABASE, statement)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module", autouse=True)
def numbers() -> Iterator[None]:
    """The accounts' numbers in dbaliases, loaded into the routing cache."""
    values = ", ".join(
        f"('{number}', '{domain}', '{login}', '{domain}')"
        for number, (login, domain) in NUMBERS.items()
    )
    sql(f"INSERT INTO dbaliases (alias_username, alias_domain, username, domain) VALUES {values}")
    accounts = ", ".join(
        f"('{login}', 'phase1', 'wave1', '{LEGACY_DOMAIN}', '{login}', '{LEGACY_DOMAIN}', "
        f"'{department}', '2026-11-16T00:00:00Z', 'telephony-test')"
        for login, department in DEPARTMENTS.items()
    )
    sql(
        "INSERT INTO sipwave_account (login, state, wave, legacy_domain, current_username, "
        f"current_domain, department, updated_at, run_id) VALUES {accounts}"
    )
    sql(
        "INSERT INTO sipwave_number (number, login, kind, state) VALUES "
        f"('{UNREGISTERED_NUMBER}', '481234002', 'number', 'legacy'), "
        f"('{TEMPORARY_NUMBER}', '481234002', 'temporary', 'temporary')"
    )
    in_container("kamcmd", "htable.reload", "routing")
    # Contacts that earlier tests registered for these accounts (SIPp phones long gone)
    # would be rung too and keep a call waiting for their timeout.
    for login, domain in sorted(set(NUMBERS.values())):
        in_container("kamcmd", "ul.rm", "location", f"{login}@{domain}")
    yield
    listed = ", ".join(f"'{number}'" for number in NUMBERS)
    sql(f"DELETE FROM dbaliases WHERE alias_username IN ({listed})")
    sql("DELETE FROM sipwave_number WHERE login = '481234002'")
    sql("DELETE FROM sipwave_account WHERE run_id = 'telephony-test'")
    in_container("kamcmd", "htable.reload", "routing")


def carrier_flags(address: str) -> str:
    listing = in_container("kamcmd", "dispatcher.list").stdout
    found = re.findall(rf"URI: sip:{re.escape(address)}:5060\S*\s+FLAGS: (\w+)", listing)
    return found[0] if found else ""


def wait_for_carrier_state(address: str, *, active: bool) -> float:
    """Seconds until dispatcher shows the carrier (in)active; fails after a generous wait."""
    start = time.monotonic()
    deadline = start + PROBE_TIMEOUT_S + 4 * PROBE_INTERVAL_S + 5
    while time.monotonic() < deadline:
        if carrier_flags(address).startswith("A" if active else "I"):
            return time.monotonic() - start
        time.sleep(0.2)
    raise AssertionError(f"{address} never became {'active' if active else 'inactive'}")


def call_out(dialled: str, *headers: str, account: str = "legacy-a") -> tuple[str, str]:
    """An authenticated INVITE of ``account`` to ``dialled``; (final status, Call-ID)."""
    _, domain, _ = ACCOUNTS[account]
    with phone(next(CALLER_SOCKETS)) as handset:
        answer = authenticated(
            handset, account, "INVITE", f"sip:{dialled}@{domain}", to_user=dialled,
            headers=headers, wait_s=PROBE_TIMEOUT_S + 3,
        )  # fmt: skip
        return status(answer), handset.call_id


def header(message: bytes, name: str) -> str:
    found = re.search(rf"^{name}:\s*(.*?)\r$", message.decode(), re.M | re.I)
    return found[1] if found else ""


def department_of(call_id: str) -> str:
    return sql(f"SELECT department FROM acc WHERE callid = '{call_id}'").strip()


def call_records(call_id: str) -> list[tuple[str, ...]]:
    """(account, carrier, caller, callee, direction, sip_code, site) of each row; a NULL
    is ""."""
    rows = sql(
        "SELECT account, carrier, caller, callee, direction, sip_code, site FROM acc "
        f"WHERE callid = '{call_id}'"
    )
    return [tuple(line.split("|")) for line in rows.splitlines()]


# -- outbound ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dialled", ["+48 22 555 01 00", "0048225550100", "225550100"])
def test_any_notation_reaches_the_carrier_once_in_e164_with_the_accounts_number(carriers, dialled):
    answer, call_id = call_out(dialled.replace(" ", ""))
    assert answer == "SIP/2.0 200 OK"
    invites = carriers["a"].invites()
    assert len(invites) == 1 and carriers["b"].invites() == []
    assert invites[0].startswith(f"INVITE sip:{CALLED}@{CARRIER_A}:5060 SIP/2.0".encode())
    assert f"sip:{OWN_NUMBER}@" in header(invites[0], "From")
    assert header(invites[0], "P-Asserted-Identity") == f"<sip:{OWN_NUMBER}@{PROXY_ADDRESS}>"
    assert call_records(call_id) == [
        (ACCOUNT, "carrier-a", OWN_NUMBER, CALLED, "outbound", "200", WARSAW)
    ]


@pytest.mark.parametrize(
    ("dialled", "carrier", "presented"),
    [("+48225550100", "a", LEGACY_NUMBER), ("+48615550100", "b", OWN_NUMBER)],
)
def test_clip_allow_list_number_only_on_the_carrier_that_allows_it(
    carriers, dialled, carrier, presented
):
    answer, _ = call_out(dialled, f"P-Preferred-Identity: <tel:{LEGACY_NUMBER}>")
    assert answer == "SIP/2.0 200 OK"
    (invite,) = carriers[carrier].invites()
    assert f"sip:{presented}@" in header(invite, "From")
    assert presented in header(invite, "P-Asserted-Identity")
    assert header(invite, "P-Preferred-Identity") == ""


def test_a_number_not_on_the_list_is_replaced_by_the_accounts(carriers):
    answer, _ = call_out(CALLED, "P-Preferred-Identity: <tel:+48229999999>")
    assert answer == "SIP/2.0 200 OK"
    (invite,) = carriers["a"].invites()
    assert f"sip:{OWN_NUMBER}@" in header(invite, "From")
    assert b"+48229999999" not in invite


def test_privacy_id_hides_the_number_in_from_and_keeps_pai_for_the_carrier(carriers):
    answer, _ = call_out(CALLED, "Privacy: id")
    assert answer == "SIP/2.0 200 OK"
    (invite,) = carriers["a"].invites()
    assert "anonymous@anonymous.invalid" in header(invite, "From")
    assert OWN_NUMBER not in header(invite, "From")
    assert header(invite, "P-Asserted-Identity") == f"<sip:{OWN_NUMBER}@{PROXY_ADDRESS}>"
    assert header(invite, "Privacy") == "id"


def test_carrier_a_answering_503_completes_over_carrier_b(carriers):
    carriers["a"].invite_answer = b"503 Service Unavailable"
    answer, call_id = call_out(CALLED)
    assert answer == "SIP/2.0 200 OK"
    assert len(carriers["a"].invites()) == 1
    (invite,) = carriers["b"].invites()
    # carrier B does not allow foreign numbers; the account's own number is all it gets
    assert f"sip:{OWN_NUMBER}@" in header(invite, "From")
    assert call_records(call_id) == [
        (ACCOUNT, "carrier-b", OWN_NUMBER, CALLED, "outbound", "200", WARSAW)
    ]


def test_a_stopped_carrier_is_probed_down_and_calls_go_to_the_next_at_once(carriers):
    carriers["a"].stop()
    try:
        wait_for_carrier_state(CARRIER_A, active=False)
        started = time.monotonic()
        answer, _ = call_out(CALLED)
        took = time.monotonic() - started
    finally:
        carriers["a"].start()
    assert answer == "SIP/2.0 200 OK"
    assert len(carriers["b"].invites()) == 1
    assert took < 2, f"the call waited {took:.1f} s for a carrier known to be down"
    wait_for_carrier_state(CARRIER_A, active=True)


# -- carriers of a site ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("account", "dialled", "carrier"),
    [
        # An account in Gdansk's area: Gdansk's own carrier for Warsaw numbers ...
        ("new", "+48225550100", "c"),
        # ... and the carrier of every site where Gdansk has none of its own (+4861).
        ("new", "+48615550100", "b"),
        # An account of a site without carriers of its own: the carriers of every site.
        ("legacy-a", "+48225550100", "a"),
    ],
)
def test_the_callers_site_chooses_among_the_carriers_of_the_prefix(
    carriers, account, dialled, carrier
):
    answer, _ = call_out(dialled, account=account)
    assert answer == "SIP/2.0 200 OK"
    reached = {name: len(c.invites()) for name, c in carriers.items() if c.invites()}
    assert reached == {carrier: 1}


def test_a_site_carriers_call_is_recorded_with_the_sites_account_carrier_and_site(carriers):
    answer, call_id = call_out(CALLED, account="new")
    assert answer == "SIP/2.0 200 OK"
    (invite,) = carriers["c"].invites()
    assert invite.startswith(f"INVITE sip:{CALLED}@{CARRIER_C}:5060 SIP/2.0".encode())
    assert f"sip:{GDANSK_NUMBER}@" in header(invite, "From")
    assert call_records(call_id) == [
        (GDANSK_ACCOUNT, "carrier-c", GDANSK_NUMBER, CALLED, "outbound", "200", GDANSK)
    ]


def test_a_site_carrier_answering_503_fails_over_to_the_sites_next_carrier(carriers):
    carriers["c"].invite_answer = b"503 Service Unavailable"
    answer, call_id = call_out(CALLED, account="new")
    assert answer == "SIP/2.0 200 OK"
    assert len(carriers["c"].invites()) == 1
    assert len(carriers["d"].invites()) == 1
    assert carriers["a"].invites() == [] and carriers["b"].invites() == []
    assert call_records(call_id) == [
        (GDANSK_ACCOUNT, "carrier-d", GDANSK_NUMBER, CALLED, "outbound", "200", GDANSK)
    ]


def test_when_every_site_carrier_fails_the_call_goes_out_through_the_carriers_of_every_site(
    carriers,
):
    carriers["c"].invite_answer = b"503 Service Unavailable"
    carriers["d"].invite_answer = b"503 Service Unavailable"
    answer, call_id = call_out(CALLED, account="new")
    assert answer == "SIP/2.0 200 OK"
    tried = {name: len(c.invites()) for name, c in carriers.items() if c.invites()}
    assert tried == {"c": 1, "d": 1, "a": 1}
    assert call_records(call_id) == [
        (GDANSK_ACCOUNT, "carrier-a", GDANSK_NUMBER, CALLED, "outbound", "200", GDANSK)
    ]


# -- inbound -----------------------------------------------------------------------------------


@contextmanager
def registered_handsets(account: str) -> Iterator[list]:
    """Two phones of the account, each registered with its own contact."""
    user, domain, _ = ACCOUNTS[account]
    with phone(HANDSETS[0]) as first, phone(HANDSETS[1]) as second:
        handsets = [first, second]
        for handset in handsets:
            contact = f"Contact: <sip:{user}@{handset.address}:{handset.port}>"
            answer = authenticated(
                handset, account, "REGISTER", f"sip:{domain}", headers=(contact, "Expires: 600")
            )
            assert status(answer) == "SIP/2.0 200 OK"
        try:
            yield handsets
        finally:
            for handset in handsets:
                authenticated(
                    handset, account, "REGISTER", f"sip:{domain}",
                    headers=("Contact: *", "Expires: 0"),
                )  # fmt: skip


def public_network_invite(network, called: str) -> bytes:
    """An INVITE to ``called`` as a carrier sends it, from a caller on the public network."""
    return network.request(
        "INVITE",
        f"sip:{called}@{PROXY_ADDRESS}",
        from_uri=f"sip:+48601000001@{CARRIER_A}",
        to_uri=f"sip:{called}@{PROXY_ADDRESS}",
        headers=(f"Contact: <sip:+48601000001@{network.address}:{network.port}>",),
    )


def call_in(source: str, called: str, *, wait_s: float = 3) -> tuple[str, str]:
    """An INVITE from ``source`` as a carrier sends it; (final status, Call-ID)."""
    with phone(source) as network:
        invite = public_network_invite(network, called)
        return status(network.exchange(invite, wait_s)), network.call_id


def ring_both_handsets(account: str, carrier: str, called: str) -> str:
    """A carrier's call to ``called`` while two phones of ``account`` are registered: both
    must ring (each answers 486, so the carrier gets 486). Returns the Call-ID."""
    with registered_handsets(account) as handsets, phone(carrier) as network:
        network.send(public_network_invite(network, called))
        rung = [handset.answer(3, skip_provisional=False) for handset in handsets]
        for handset, arrived in zip(handsets, rung, strict=True):
            if arrived is not None:
                handset.sock.sendto(reply(arrived, b"486 Busy Here"), (PROXY_ADDRESS, PROXY_PORT))
        final = status(network.answer(3))
        call_id = network.call_id
    assert all(arrived is not None and arrived.startswith(b"INVITE ") for arrived in rung), rung
    assert final == "SIP/2.0 486 Busy Here"
    return call_id


def test_inbound_call_to_a_served_number_rings_every_registered_phone():
    call_id = ring_both_handsets("legacy-a", CARRIER_A, OWN_NUMBER)
    assert call_records(call_id) == [
        (ACCOUNT, "carrier-a", "+48601000001", OWN_NUMBER, "inbound", "486", WARSAW)
    ]


def test_inbound_call_to_an_unregistered_account_gets_480():
    answer, call_id = call_in(CARRIER_B, UNREGISTERED_NUMBER)
    assert answer == "SIP/2.0 480 Temporarily Unavailable"
    assert len(call_records(call_id)) == 1


def test_inbound_call_to_a_gdansk_account_is_recorded_with_its_site():
    answer, call_id = call_in(CARRIER_B, GDANSK_NUMBER)
    assert answer == "SIP/2.0 480 Temporarily Unavailable"
    assert call_records(call_id) == [
        (GDANSK_ACCOUNT, "carrier-b", "+48601000001", GDANSK_NUMBER, "inbound", "480", GDANSK)
    ]


def test_inbound_call_to_an_unknown_number_gets_a_bare_404():
    answer, _ = call_in(CARRIER_A, "+48229999999")
    assert answer == "SIP/2.0 404 Not Found"


CONNECTED_LINE_CLAIMS = (
    b"P-Asserted-Identity: <sip:+48229999999@ip.tanifon.pl>",
    b"Remote-Party-ID: <sip:+48229999999@ip.tanifon.pl>;party=called;screen=yes",
    b"Identity: eyJhbGciOiJFUzI1NiJ9.forged.signature;info=<https://cert.example/x.pem>",
    # Identity's compact form (RFC 8224): Kamailio parses it as Identity, textops sees "y".
    b"y: eyJhbGciOiJFUzI1NiJ9.compact-form-forged.signature",
)


def final_or_ringing(network) -> bytes | None:
    """The next answer that is not the proxy's own 100 Trying."""
    while (answer := network.answer(3, skip_provisional=False)) is not None:
        if not answer.startswith(b"SIP/2.0 100 "):
            return answer
    return None


def test_a_phones_answer_never_tells_the_carrier_someone_elses_number():
    """Connected line: the phone answering a carrier's call claims another number in its
    180 and 200; neither reaches the carrier."""
    with registered_handsets("legacy-a") as handsets, phone(CARRIER_A) as network:
        network.send(public_network_invite(network, OWN_NUMBER))
        invite = handsets[0].answer(3, skip_provisional=False)
        assert invite is not None and invite.startswith(b"INVITE "), invite
        routes = [h for h in invite.split(b"\r\n") if h.lower().startswith(b"record-route:")]
        to_phone = (PROXY_ADDRESS, PROXY_PORT)
        contact = f"Contact: <sip:481234001@{handsets[0].address}:{handsets[0].port}>".encode()
        # One reply at a time: sent at once, two Kamailio workers may take the 200 first,
        # and tm then absorbs the late 180 (a provisional after a final answer).
        received = []
        for code in (b"180 Ringing", b"200 OK"):
            answer = reply(invite, code, contact, *routes, *CONNECTED_LINE_CLAIMS)
            handsets[0].sock.sendto(answer, to_phone)
            received.append(final_or_ringing(network) or b"")
        ringing, answered = received
    assert status(ringing) == "SIP/2.0 180 Ringing" and status(answered) == "SIP/2.0 200 OK"
    for received in (ringing, answered):
        assert b"+48229999999" not in received
        for claim in CONNECTED_LINE_CLAIMS:
            name, value = claim.split(b": ", 1)
            assert value not in received, received.decode()
            assert b"\r\n" + name + b":" not in received, received.decode()
    # The dialog's route set brings the proxy's token back to the carrier, as any UAC's.
    token = rb"^Record-Route: <sip:127\.0\.20\.11[^>]*;" + DIALOG_TOKEN.encode() + b"[;>]"
    assert re.search(token, answered, re.M), answered.decode()


def test_an_account_without_a_number_of_its_own_never_reaches_a_carrier(carriers):
    """481234009 has no number: once its login was presented, as +48481234009, a
    stranger's number."""
    answer, call_id = call_out(CALLED, account="guessed")
    assert answer == "SIP/2.0 403 Caller Number Unknown"
    assert all(c.invites() == [] for c in carriers.values())
    assert [row[5] for row in call_records(call_id)] == ["403"]


def test_the_same_call_from_an_address_that_is_no_carrier_is_refused():
    with registered_handsets("legacy-a") as handsets:
        answer, _ = call_in(STRANGER, OWN_NUMBER)
        rung = [handset.answer(1, skip_provisional=False) for handset in handsets]
    assert answer == "SIP/2.0 403 Relaying Forbidden"
    assert rung == [None, None]


# -- temporary numbers and departments ---------------------------------------------------------


@pytest.mark.parametrize(
    ("dialled", "carrier", "presented"),
    [("+48225550100", "a", UNREGISTERED_NUMBER), ("+48615550100", "b", TEMPORARY_NUMBER)],
)
def test_an_account_with_a_temporary_number_presents_its_own_only_where_clip_is_unscreened(
    carriers, dialled, carrier, presented
):
    answer, call_id = call_out(dialled, account="legacy-b")
    assert answer == "SIP/2.0 200 OK"
    (invite,) = carriers[carrier].invites()
    assert f"sip:{presented}@" in header(invite, "From")
    assert header(invite, "P-Asserted-Identity") == f"<sip:{presented}@{PROXY_ADDRESS}>"
    assert call_records(call_id) == [
        (f"481234002@{LEGACY_DOMAIN}", f"carrier-{carrier}", presented, dialled, "outbound",
         "200", WARSAW)
    ]  # fmt: skip
    assert department_of(call_id) == "support"


def test_an_inbound_call_to_a_temporary_number_rings_the_accounts_phones():
    call_id = ring_both_handsets("legacy-b", CARRIER_B, TEMPORARY_NUMBER)
    assert call_records(call_id) == [
        (f"481234002@{LEGACY_DOMAIN}", "carrier-b", "+48601000001", TEMPORARY_NUMBER,
         "inbound", "486", WARSAW)
    ]  # fmt: skip
    assert department_of(call_id) == "support"


def test_every_call_record_of_an_account_carries_its_department(carriers):
    _, call_id = call_out(CALLED)
    assert department_of(call_id) == "sales"


def test_an_answered_and_hung_up_call_leaves_one_record_and_one_end():
    """A whole call from a real SIPp phone: INVITE, challenge, answer, ACK, BYE."""
    user, domain, password = ACCOUNTS["legacy-a"]
    call = sipp.run(
        "call_auth.xml", f"{PROXY_ADDRESS}:{PROXY_PORT}", next(CALLER_SOCKETS),
        rows=[[user, domain, sipp.credentials(user, password), CALLED, domain]],
    )  # fmt: skip
    assert call.successful == 1, call.output
    call_id = re.search(r"^Call-ID:\s*(\S+)", call.messages, re.M)[1]
    assert call_records(call_id) == [
        (ACCOUNT, "carrier-a", OWN_NUMBER, CALLED, "outbound", "200", WARSAW)
    ]
    # The router's columns are the INVITE's: the BYE's row leaves them empty.
    ends = sql(
        "SELECT sip_code, sip_reason, method, account, site FROM sipwave_call_end "
        f"WHERE callid = '{call_id}'"
    )
    assert ends.splitlines() == ["200|Call Ended|BYE||"]


def test_the_call_records_table_has_every_column_of_a_call():
    columns = sql("SELECT name FROM pragma_table_info('acc')").split()
    assert {
        "account", "department", "carrier", "caller", "callee", "start_time", "time", "site"
    } <= set(columns)  # fmt: skip


def test_probing_never_reaches_anything_but_the_carriers():
    listing = in_container("kamcmd", "dispatcher.list").stdout
    assert set(re.findall(r"URI: sip:([\d.]+):", listing)) == {
        CARRIER_A, CARRIER_B, CARRIER_C, CARRIER_D
    }  # fmt: skip


def test_no_client_identity_header_reaches_a_carrier(carriers):
    call_out(
        CALLED,
        "P-Asserted-Identity: <tel:+48229999999>",
        "Remote-Party-ID: <tel:+4822999>",
        "Identity: eyJhbGciOiJFUzI1NiJ9.full-form-forged.signature",
        "y: eyJhbGciOiJFUzI1NiJ9.compact-form-forged.signature",
    )
    (invite,) = carriers["a"].invites()
    assert b"+48229999999" not in invite and b"Remote-Party-ID" not in invite
    assert b"form-forged" not in invite, invite.decode()


def test_no_forwarding_claim_of_a_phone_reaches_a_carrier(carriers):
    """A carrier may let a forwarded call present the forwarding number: a phone claiming
    someone else's number forwarded to it must not get that number shown."""
    call_out(
        CALLED,
        "Diversion: <sip:+48229999998@ip.tanifon.pl>;reason=unconditional",
        "History-Info: <sip:+48229999997@ip.tanifon.pl>;index=1",
    )
    (invite,) = carriers["a"].invites()
    assert b"Diversion" not in invite and b"History-Info" not in invite
    assert b"+48229999998" not in invite and b"+48229999997" not in invite
