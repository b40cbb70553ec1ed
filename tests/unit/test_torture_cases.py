"""The torture set and its raw sender (sipwave_testlib.torture), checked without a proxy."""

import ipaddress
import socket
import threading

import pytest
from sipwave_testlib import torture

TARGET = torture.Target(
    "127.0.0.1", 5060, "ip.tanifon.pl", "481234001", source_host="127.0.0.1", source_port=40000
)
# Kamailio reads at most this much of a UDP datagram (its default msg recv max size); a
# longer case would only test the read, never the parser or the router.
KAMAILIO_UDP_READ_MAX = 32767
CATEGORIES = {"wide", "header-count", "escaped-uri", "scheme", "content-length",
              "missing-header", "nul-and-control", "utf8", "sdp", "method", "framing",
              "auth"}  # fmt: skip


def test_at_least_forty_cases_with_unique_names_in_every_category():
    names = [case.name for case in torture.CASES]
    assert len(names) >= 40
    assert len(set(names)) == len(names)
    assert {case.category for case in torture.CASES} == CATEGORIES
    assert {case.transport for case in torture.CASES} == {"UDP", "TCP"}


@pytest.mark.parametrize("case", torture.CASES, ids=lambda case: case.name)
def test_case_is_built_for_the_target(case):
    message = case.build(TARGET)
    assert isinstance(message, bytes) and message
    if case.transport == "UDP":
        assert len(message) <= KAMAILIO_UDP_READ_MAX
    if case.method and b"Via:" in message and b"[::1" not in message:
        assert TARGET.source.encode() in message


def test_methods_that_are_not_tokens_must_be_refused_with_400():
    for case in torture.CASES:
        if case.category != "method":
            continue
        line_method = case.build(TARGET).split(b" ", 1)[0].decode("utf-8", "surrogateescape")
        expected = None if torture.is_token(line_method) else frozenset({400})
        assert case.refused_with == expected, case.name


@pytest.mark.parametrize(
    ("keepalive", "refused_with", "statuses", "unacceptable"),
    [
        (False, None, [100, 407], []),
        (False, None, [200], [200]),
        (False, None, [], []),
        (True, None, [200], []),
        (False, frozenset({400}), [407], [407]),
        (False, frozenset({400}), [200], [200]),
        (False, frozenset({400}), [400], []),
    ],
)
def test_what_a_case_never_accepts(keepalive, refused_with, statuses, unacceptable):
    case = torture.Case("c", "test", "X", lambda t: b"", keepalive=keepalive,
                        refused_with=refused_with)  # fmt: skip
    assert case.unacceptable(statuses) == unacceptable


def test_no_ban_a_case_earns_silences_another_case_or_the_keepalive():
    keepalive, sources = torture.sources("127.0.20.11")
    assert set(sources) == {case.name for case in torture.CASES}
    assert keepalive not in sources.values()
    for address in [keepalive, *sources.values()]:
        assert ipaddress.ip_address(address) in ipaddress.ip_network("127.0.20.0/24")
    order = [case.name for case in torture.CASES]
    for case in torture.CASES:
        sharing = [name for name in order if sources[name] == sources[case.name]]
        assert len(sharing) <= torture.CASES_PER_SOURCE
        if case.bans_source:
            assert sharing[-1] == case.name, f"{sharing} come after the ban of {case.name}"
    assert any(case.bans_source for case in torture.CASES)


def test_sender_refuses_addresses_off_loopback():
    case = torture.CASES[0]
    with pytest.raises(ValueError, match="not a loopback address"):
        torture.send(case, torture.Target("192.0.2.1", 5060, "d", "u"))


class Answerer:
    """A UDP and TCP peer on 127.0.0.1 answering every message with 100 and a final status."""

    def __init__(self, final: bytes):
        self.final = final
        self.received: list[bytes] = []
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.port = self.udp.getsockname()[1]
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("127.0.0.1", self.port))
        self.tcp.listen()
        threading.Thread(target=self._udp, daemon=True).start()
        threading.Thread(target=self._tcp, daemon=True).start()

    def _answers(self) -> bytes:
        return b"SIP/2.0 100 Trying\r\n\r\n", self.final + b"\r\nContent-Length: 0\r\n\r\n"

    def _udp(self):
        data, peer = self.udp.recvfrom(65535)
        self.received.append(data)
        for answer in self._answers():
            self.udp.sendto(answer, peer)

    def _tcp(self):
        connection, _ = self.tcp.accept()
        with connection:
            self.received.append(connection.recv(65535))
            connection.sendall(b"".join(self._answers()))

    def close(self):
        self.udp.close()
        self.tcp.close()


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
def test_sender_collects_answers_until_the_final_one(transport):
    peer = Answerer(b"SIP/2.0 407 Proxy Authentication Required")
    try:
        case = next(c for c in torture.CASES if c.transport == transport and c.method == "INVITE")
        target = torture.Target("127.0.0.1", peer.port, "ip.tanifon.pl", "481234001")
        outcome = torture.send(case, target, wait_s=2.0)
    finally:
        peer.close()
    assert outcome.statuses == [100, 407]
    assert outcome.final == 407
    via = peer.received[0].split(b"\r\nVia: ", 1)[1].split(b"\r\n", 1)[0]
    assert via.startswith(f"SIP/2.0/{transport} 127.0.0.1:".encode())
