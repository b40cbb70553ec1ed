"""The project's own malformed and hostile SIP messages, and a raw sender for them.

Each case is a request (or a stray datagram) that a phone would never send: headers far
wider or more numerous than any phone's, escaped and unknown URIs, a Content-Length that
lies, missing mandatory headers, NUL bytes and bytes that are not UTF-8 in the values the
router reads, broken bodies, and methods that are not RFC 3261 tokens. The categories are
those of RFC 4475; the messages are written for this proxy (its domains, its accounts, the
values the KEMI router reads), not taken from the RFC.

A case builds its bytes from a :class:`Target` (proxy, domain, an existing login, and the
address and port the case is sent from), so the same set runs against any lab proxy. Nothing
here decides what a correct answer is beyond what holds for every case: an unauthenticated
request never gets a 2xx (only an OPTIONS to the proxy itself may), and a case may narrow the
answers it accepts (a method that is not a token is refused with 400).
"""

import random
import re
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from sipwave_testlib.sipp import require_loopback

CRLF = b"\r\n"
# How long a case waits for a final answer: the proxy answers a request it parses within
# milliseconds on loopback; one it drops is never answered.
ANSWER_WAIT_S = 0.6
STATUS_LINE = re.compile(rb"^SIP/2\.0 (\d{3})[^\r\n]*", re.MULTILINE)
# RFC 3261 token characters (a method is a token).
TOKEN = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+$")


@dataclass(frozen=True)
class Target:
    """Where a case goes and what it is templated with."""

    proxy_host: str
    proxy_port: int
    domain: str  # a domain the proxy serves
    user: str  # a login that exists there: the cases try to pass as it without credentials
    source_host: str = "127.0.0.1"
    source_port: int = 0
    transport: str = "UDP"
    # Unique per sending, so that no case looks like a retransmission of another.
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:16])

    @property
    def proxy(self) -> str:
        return f"{self.proxy_host}:{self.proxy_port}"

    @property
    def source(self) -> str:
        return f"{self.source_host}:{self.source_port}"


@dataclass(frozen=True)
class Case:
    name: str
    category: str
    # The method the request claims in its request line ("" for what is no request).
    method: str
    build: Callable[[Target], bytes]
    transport: str = "UDP"
    # An OPTIONS to the proxy itself, well-formed underneath the torture: 200 is allowed.
    keepalive: bool = False
    # When set, the only final answers the case accepts (besides none at all).
    refused_with: frozenset[int] | None = None
    # The proxy bans the source for it (a scanner): no later case may come from there.
    bans_source: bool = False

    def unacceptable(self, statuses: list[int]) -> list[int]:
        """The final answers among ``statuses`` that this case must never get."""
        finals = [s for s in statuses if s >= 200]
        wrong = [s for s in finals if 200 <= s < 300 and not self.keepalive]
        if self.refused_with is not None:
            wrong += [s for s in finals if s not in self.refused_with and s not in wrong]
        return wrong


def request(
    t: Target,
    method: bytes | str = b"OPTIONS",
    ruri: bytes | str | None = None,
    *,
    headers: dict[str, bytes | str | None] | None = None,
    extra: list[bytes | str] | None = None,
    body: bytes = b"",
    content_length: bytes | str | None = None,
    version: bytes = b"SIP/2.0",
    eol: bytes = CRLF,
) -> bytes:
    """A request of ``t``'s identity, with the given parts replaced.

    ``headers`` replaces the value of a default header (``None`` leaves it out); ``extra``
    lines go before Content-Length, which is the body's length unless ``content_length``
    says otherwise (``b""`` leaves the header out).
    """
    method = _bytes(method)
    plain = method.split(b"|")[0]
    if ruri is None:
        if plain == b"REGISTER":
            ruri = f"sip:{t.domain}"
        elif plain == b"OPTIONS":
            ruri = f"sip:{t.proxy}"
        else:
            ruri = f"sip:{t.user}@{t.domain}"
    values: dict[str, bytes | str | None] = {
        "Via": f"SIP/2.0/{t.transport} {t.source};branch=z9hG4bK-{t.token};rport",
        "Max-Forwards": "70",
        "From": f"<sip:{t.user}@{t.domain}>;tag={t.token[:8]}",
        "To": f"<sip:{t.user}@{t.domain}>",
        "Call-ID": f"{t.token}@{t.source_host}",
        "CSeq": b"1 " + method,
        "Contact": f"<sip:{t.user}@{t.source}>" if plain in (b"REGISTER", b"INVITE") else None,
        "User-Agent": "sipwave-torture",
    }
    values.update(headers or {})
    lines = [_bytes(method) + b" " + _bytes(ruri) + b" " + version]
    lines += [name.encode() + b": " + _bytes(v) for name, v in values.items() if v is not None]
    lines += [_bytes(line) for line in extra or []]
    if content_length is None:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    elif content_length != b"":
        lines.append(b"Content-Length: " + _bytes(content_length))
    return eol.join(lines) + eol + eol + body


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _noise(seed: int, size: int) -> bytes:
    """Reproducible bytes that are no SIP at all."""
    return random.Random(seed).randbytes(size)


def _sdp(t: Target, media_lines: int = 1) -> bytes:
    media = b"m=audio 40000 RTP/AVP 0\r\n" * media_lines
    return (
        f"v=0\r\no=- 1 1 IN IP4 {t.source_host}\r\ns=-\r\nc=IN IP4 {t.source_host}\r\nt=0 0\r\n"
    ).encode() + media


def _digest(t: Target, header: str = "Authorization", **fields: str) -> str:
    """A Digest credentials header of ``t``'s login with made-up (never valid) values."""
    values = {
        "username": f'"{t.user}"',
        "realm": f'"{t.domain}"',
        "nonce": '"0000000000000000000000000000000000000000"',
        "uri": f'"sip:{t.domain}"',
        "response": '"00000000000000000000000000000000"',
        "algorithm": "MD5",
    }
    values.update(fields)
    return f"{header}: Digest " + ", ".join(f"{k}={v}" for k, v in values.items())


def _cases() -> list[Case]:
    c: list[Case] = []

    def add(name, category, method, build, **options):
        c.append(Case(name, category, method, build, **options))

    # A table of cases, one or a few lines each: kept as written rather than one argument a line.
    # fmt: off

    # -- wide: values far beyond any phone's ------------------------------------------------
    add("wide-subject", "wide", "OPTIONS",
        lambda t: request(t, headers={"Subject": "x" * 16000}), keepalive=True)
    add("wide-user-agent", "wide", "REGISTER",
        lambda t: request(t, "REGISTER", headers={"User-Agent": "Yealink " * 1200}))
    add("wide-request-uri-user", "wide", "INVITE",
        lambda t: request(t, "INVITE", f"sip:{'9' * 4000}@{t.domain}", body=_sdp(t),
                          headers={"Content-Type": "application/sdp"}))
    add("wide-header-name", "wide", "OPTIONS",
        lambda t: request(t, extra=[f"X-{'a' * 4000}: 1"]), keepalive=True)
    add("wide-display-name", "wide", "INVITE",
        lambda t: request(t, "INVITE",
                          headers={"From": f'"{"A" * 8000}" <sip:{t.user}@{t.domain}>;tag=1'}))
    add("wide-to-domain", "wide", "REGISTER",
        lambda t: request(t, "REGISTER", headers={"To": f"<sip:{t.user}@{'a' * 3000}.{t.domain}>"}))
    add("wide-via-branch", "wide", "INVITE",
        lambda t: request(t, "INVITE", headers={
            "Via": f"SIP/2.0/UDP {t.source};branch=z9hG4bK{'b' * 6000};rport"}))
    add("wide-tcp-header", "wide", "OPTIONS",
        lambda t: request(t, headers={"Subject": "y" * 60000}), transport="TCP", keepalive=True)

    # -- header counts ----------------------------------------------------------------------
    add("many-headers", "header-count", "OPTIONS",
        lambda t: request(t, extra=[f"X-Torture-{n}: {n}" for n in range(1000)]), keepalive=True)
    add("many-via", "header-count", "INVITE",
        lambda t: request(t, "INVITE", extra=[
            f"Via: SIP/2.0/UDP 127.0.0.{n % 250 + 1}:5060;branch=z9hG4bK{n}" for n in range(200)]))
    add("many-contacts", "header-count", "REGISTER",
        lambda t: request(t, "REGISTER", headers={"Contact": ", ".join(
            f"<sip:{t.user}@{t.source_host}:{6000 + n}>" for n in range(300))}))
    add("many-routes", "header-count", "INVITE",
        lambda t: request(t, "INVITE", extra=[f"Route: <sip:{t.proxy};lr>"] * 100))
    add("many-authorizations", "header-count", "REGISTER",
        lambda t: request(t, "REGISTER", extra=[
            _digest(t, username=f'"48120{n:04d}"') for n in range(50)]))
    add("duplicate-singletons", "header-count", "INVITE",
        lambda t: request(t, "INVITE", extra=[
            f"From: <sip:other@{t.domain}>;tag=2", f"To: <sip:other@{t.domain}>",
            "Call-ID: second", "CSeq: 2 INVITE", "Max-Forwards: 1"]))

    # -- escaped and odd URIs ---------------------------------------------------------------
    add("escaped-request-uri-user", "escaped-uri", "INVITE",
        lambda t: request(t, "INVITE", "sip:" + "".join(f"%{ord(ch):02X}" for ch in t.user)
                          + f"@{t.domain}"))
    add("escaped-nul-in-to-user", "escaped-uri", "REGISTER",
        lambda t: request(t, "REGISTER", headers={"To": f"<sip:{t.user}%00evil@{t.domain}>"}))
    add("broken-escapes", "escaped-uri", "INVITE",
        lambda t: request(t, "INVITE", f"sip:%zz%4%@{t.domain}"))
    add("escaped-pipe-in-from-user", "escaped-uri", "INVITE",
        lambda t: request(t, "INVITE", headers={
            "From": f"<sip:{t.user}%7C%3Cnull%3E%7C{t.domain}@{t.domain}>;tag=1"}))
    add("raw-pipe-in-from-user", "escaped-uri", "INVITE",
        lambda t: request(t, "INVITE", headers={
            "From": f"<sip:{t.user}|<null>|{t.domain}@{t.domain}>;tag=1"}))
    add("raw-pipe-in-to-domain", "escaped-uri", "REGISTER",
        lambda t: request(t, "REGISTER", headers={"To": f"<sip:{t.user}@{t.domain}|<null>|x>"}))
    add("odd-uri-parameters", "escaped-uri", "INVITE",
        lambda t: request(t, "INVITE",
                          f"sip:{t.user}@{t.domain};lr;maddr=;transport=%00;;;=;ttl=99999"))

    # -- schemes ----------------------------------------------------------------------------
    add("unknown-request-uri-scheme", "scheme", "OPTIONS",
        lambda t: request(t, "OPTIONS", f"xyz:{t.user}@{t.domain}"))
    add("tel-request-uri", "scheme", "INVITE",
        lambda t: request(t, "INVITE", "tel:+48221234567"))
    add("mailto-to-in-register", "scheme", "REGISTER",
        lambda t: request(t, "REGISTER", headers={"To": f"<mailto:{t.user}@{t.domain}>"}))
    add("http-from", "scheme", "INVITE",
        lambda t: request(t, "INVITE", headers={"From": f"<http://{t.domain}/{t.user}>;tag=1"}))
    add("unknown-contact-scheme", "scheme", "REGISTER",
        lambda t: request(t, "REGISTER", headers={"Contact": f"<gopher://{t.source}/>"}))
    add("request-uri-without-scheme", "scheme", "INVITE",
        lambda t: request(t, "INVITE", f"{t.user}@{t.domain}"))

    # -- Content-Length ---------------------------------------------------------------------
    sdp_type = {"Content-Type": "application/sdp"}
    add("content-length-beyond-datagram", "content-length", "INVITE",
        lambda t: request(t, "INVITE", body=_sdp(t), content_length="5000", headers=sdp_type))
    add("content-length-short-of-body", "content-length", "INVITE",
        lambda t: request(t, "INVITE", body=_sdp(t), content_length="10", headers=sdp_type))
    add("content-length-negative", "content-length", "REGISTER",
        lambda t: request(t, "REGISTER", content_length="-1"))
    add("content-length-overflow", "content-length", "INVITE",
        lambda t: request(t, "INVITE", body=_sdp(t), headers=sdp_type,
                          content_length="99999999999999999999999999"))
    add("content-length-not-a-number", "content-length", "REGISTER",
        lambda t: request(t, "REGISTER", content_length="abc"))
    add("content-length-twice", "content-length", "INVITE",
        lambda t: request(t, "INVITE", body=_sdp(t), headers=sdp_type,
                          extra=["Content-Length: 500"]))
    add("tcp-without-content-length", "content-length", "INVITE",
        lambda t: request(t, "INVITE", body=_sdp(t), headers=sdp_type, content_length=b""),
        transport="TCP")
    add("tcp-content-length-beyond-stream", "content-length", "INVITE",
        lambda t: request(t, "INVITE", body=b"v=0\r\n", headers=sdp_type, content_length="5000"),
        transport="TCP")

    # -- missing or contradictory mandatory headers -----------------------------------------
    add("no-call-id", "missing-header", "INVITE",
        lambda t: request(t, "INVITE", headers={"Call-ID": None}))
    add("no-cseq", "missing-header", "REGISTER",
        lambda t: request(t, "REGISTER", headers={"CSeq": None}))
    add("no-from", "missing-header", "INVITE",
        lambda t: request(t, "INVITE", headers={"From": None}))
    add("no-to", "missing-header", "REGISTER",
        lambda t: request(t, "REGISTER", headers={"To": None}))
    add("no-via", "missing-header", "OPTIONS",
        lambda t: request(t, headers={"Via": None}))
    add("cseq-method-differs", "missing-header", "REGISTER",
        lambda t: request(t, "REGISTER", headers={"CSeq": "1 INVITE"}))
    add("cseq-number-out-of-range", "missing-header", "REGISTER",
        lambda t: request(t, "REGISTER", headers={"CSeq": "4294967296 REGISTER"}))
    add("empty-from-and-to", "missing-header", "INVITE",
        lambda t: request(t, "INVITE", headers={"From": "", "To": ""}))

    # -- NUL bytes, control characters, line endings ----------------------------------------
    add("nul-in-user-agent", "nul-and-control", "OPTIONS",
        lambda t: request(t, headers={"User-Agent": b"Yealink\x00SIP-T46U"}),
        keepalive=True)
    add("nul-in-request-uri", "nul-and-control", "INVITE",
        lambda t: request(t, "INVITE", f"sip:{t.user}\x00@{t.domain}"))
    add("nul-in-header-name", "nul-and-control", "REGISTER",
        lambda t: request(t, "REGISTER", extra=[b"X-\x00Torture: 1"]))
    add("nul-in-body", "nul-and-control", "MESSAGE",
        lambda t: request(t, "MESSAGE", body=b"hello\x00\x00\x00world",
                          headers={"Content-Type": "text/plain"}))
    add("nul-in-to-domain", "nul-and-control", "REGISTER",
        lambda t: request(t, "REGISTER", headers={"To": f"<sip:{t.user}@{t.domain}\x00.evil>"}))
    add("control-characters-in-display-name", "nul-and-control", "INVITE",
        lambda t: request(t, "INVITE", headers={
            "From": f'"\x01\x07\x1b[2J\x7f" <sip:{t.user}@{t.domain}>;tag=1'}))
    add("bare-lf-line-endings", "nul-and-control", "REGISTER",
        lambda t: request(t, "REGISTER", eol=b"\n"))
    add("folded-header-lines", "nul-and-control", "OPTIONS",
        lambda t: request(t, headers={"Subject": "first\r\n second\r\n\tthird"}), keepalive=True)
    add("space-before-colon", "nul-and-control", "OPTIONS",
        lambda t: request(t, extra=["Subject \t :   spaced"]), keepalive=True)

    # -- bytes that are not UTF-8, in the values the router reads ----------------------------
    add("not-utf8-user-agent", "utf8", "OPTIONS",
        lambda t: request(t, headers={"User-Agent": b"Phone \xff\xfe\xc3"}), keepalive=True)
    add("not-utf8-user-agent-register", "utf8", "REGISTER",
        lambda t: request(t, "REGISTER", headers={"User-Agent": b"\x80\x80\x80"}))
    add("not-utf8-from-user", "utf8", "INVITE",
        lambda t: request(t, "INVITE", headers={
            "From": f"<sip:{t.user}".encode() + b"\xc3\x28" + f"@{t.domain}>;tag=1".encode()}))
    add("not-utf8-from-domain", "utf8", "INVITE",
        lambda t: request(t, "INVITE", headers={
            "From": f"<sip:{t.user}@".encode() + b"\xfe.example>;tag=1"}))
    add("not-utf8-to-domain", "utf8", "REGISTER",
        lambda t: request(t, "REGISTER", headers={
            "To": f"<sip:{t.user}@{t.domain}".encode() + b"\xe2\x82>"}))
    add("not-utf8-request-uri-user", "utf8", "INVITE",
        lambda t: request(t, "INVITE", b"sip:\xed\xa0\x80" + f"@{t.domain}".encode()))
    add("not-utf8-request-uri-domain", "utf8", "INVITE",
        lambda t: request(t, "INVITE", f"sip:{t.user}@".encode() + b"\xc0\xaf.example"))
    add("not-utf8-digest-username", "utf8", "REGISTER",
        lambda t: request(t, "REGISTER", extra=[
            _digest(t, username='"').encode()[:-1] + b"\xff\xfe" + b'"']))
    add("utf8-multibyte-user-agent", "utf8", "OPTIONS",
        lambda t: request(t, headers={"User-Agent": "Telefon \u260e \u00e9\u00df \U0001f4de"}),
        keepalive=True)

    # -- bodies ---------------------------------------------------------------------------
    add("sdp-garbage-lines", "sdp", "INVITE",
        lambda t: request(t, "INVITE", headers=sdp_type, body=(
            b"v=9\r\no=\r\nc=IN IP4 999.999.999.999\r\nm=audio -1 RTP/AVP x\r\na=rtpmap:\r\n")))
    add("sdp-binary-body", "sdp", "INVITE",
        lambda t: request(t, "INVITE", headers=sdp_type, body=_noise(4475, 900)))
    add("sdp-many-media", "sdp", "INVITE",
        lambda t: request(t, "INVITE", headers=sdp_type, body=_sdp(t, media_lines=1000)))
    add("multipart-without-boundary", "sdp", "INVITE",
        lambda t: request(t, "INVITE", headers={
            "Content-Type": "multipart/mixed;boundary=never-there"}, body=_sdp(t)))
    add("content-type-not-utf8", "sdp", "INVITE",
        lambda t: request(t, "INVITE", body=_sdp(t), headers={
            "Content-Type": b"application/sdp; charset=\"\xff\""}))

    # -- methods that are not tokens (issue 11: refused with 400) ---------------------------
    not_a_token = frozenset({400})
    add("method-invite-pipe-null", "method", "INVITE|<null>",
        lambda t: request(t, "INVITE|<null>"), refused_with=not_a_token)
    add("method-register-pipe-domain", "method", "REGISTER|<null>|",
        lambda t: request(t, f"REGISTER|<null>|{t.domain}", f"sip:{t.domain}",
                          headers={"Contact": f"<sip:{t.user}@{t.source}>"}),
        refused_with=not_a_token)
    add("method-options-pipe-null", "method", "OPTIONS|<null>",
        lambda t: request(t, "OPTIONS|<null>", f"sip:{t.proxy}"), refused_with=not_a_token)
    add("method-with-angle-brackets", "method", "INV<ITE>",
        lambda t: request(t, "INV<ITE>", f"sip:{t.user}@{t.domain}"), refused_with=not_a_token)
    add("method-with-at-and-colon", "method", "REGISTER@x:y",
        lambda t: request(t, "REGISTER@x:y", f"sip:{t.domain}"), refused_with=not_a_token)
    add("method-multibyte", "method", "INVIT\u00c9",
        lambda t: request(t, "INVIT\u00c9", f"sip:{t.user}@{t.domain}"), refused_with=not_a_token)
    add("method-not-utf8", "method", "REGISTER\\xff",
        lambda t: request(t, b"REGISTER\xff", f"sip:{t.domain}"), refused_with=not_a_token)
    add("method-unknown-token", "method", "FROBNICATE",
        lambda t: request(t, "FROBNICATE", f"sip:{t.user}@{t.domain}"))

    # -- versions, framing, things that are not requests -------------------------------------
    add("sip-version-7", "framing", "INVITE",
        lambda t: request(t, "INVITE", version=b"SIP/7.0"))
    add("request-line-extra-spaces", "framing", "REGISTER",
        lambda t: request(t, "REGISTER ", f" sip:{t.domain} "))
    add("truncated-in-a-header", "framing", "INVITE",
        lambda t: request(t, "INVITE")[:180])
    add("empty-lines-only", "framing", "", lambda t: b"\r\n\r\n")
    add("stray-200-response", "framing", "",
        lambda t: (f"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {t.source};branch=z9hG4bK-{t.token}\r\n"
                   f"From: <sip:{t.user}@{t.domain}>;tag=1\r\nTo: <sip:{t.user}@{t.domain}>;tag=2"
                   f"\r\nCall-ID: {t.token}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
                   ).encode())
    add("binary-noise", "framing", "", lambda t: _noise(3261, 1400))
    add("max-forwards-zero", "framing", "INVITE",
        lambda t: request(t, "INVITE", headers={"Max-Forwards": "0"}))
    add("expires-huge", "framing", "REGISTER",
        lambda t: request(t, "REGISTER", extra=["Expires: 99999999999999"]))
    add("via-broken-ipv6-host", "framing", "INVITE",
        lambda t: request(t, "INVITE", headers={
            "Via": f"SIP/2.0/UDP [::1;branch=z9hG4bK-{t.token};rport"}))
    add("request-uri-broken-ipv6", "framing", "INVITE",
        lambda t: request(t, "INVITE", f"sip:{t.user}@[::1"))

    # -- credentials that are no credentials -------------------------------------------------
    add("digest-unterminated-quote", "auth", "REGISTER",
        lambda t: request(t, "REGISTER", extra=[
            f'Authorization: Digest username="{t.user}, realm="{t.domain}, nonce="x']))
    add("digest-huge-nonce", "auth", "REGISTER",
        lambda t: request(t, "REGISTER", extra=[_digest(t, nonce=f'"{"n" * 10000}"')]))
    add("digest-pipe-username", "auth", "REGISTER",
        lambda t: request(t, "REGISTER", extra=[
            _digest(t, username=f'"{t.user}|<null>|{t.domain}"')]))
    add("digest-made-up-response", "auth", "REGISTER",
        lambda t: request(t, "REGISTER", extra=[_digest(t)]))
    add("digest-nul-username-on-invite", "auth", "INVITE",
        lambda t: request(t, "INVITE", extra=[
            _digest(t, "Proxy-Authorization", username='"\x00"', realm=f'"{t.domain}"')]))
    add("scanner-user-agent", "auth", "REGISTER",
        lambda t: request(t, "REGISTER", headers={"User-Agent": "friendly-scanner"}),
        bans_source=True)
    # fmt: on
    return c


CASES: tuple[Case, ...] = tuple(_cases())

# Where the cases come from, inside the /24 of the proxy under test (the kamailio scenario's
# other tests use hosts below 199): two cases per source, and a case that gets its source
# banned is the last from there, so that no ban silences a later case; the keepalive check
# comes from a source of its own that no case uses.
KEEPALIVE_HOST = 199
FIRST_CASE_HOST = 200
LAST_CASE_HOST = 249
CASES_PER_SOURCE = 2


def sources(proxy_host: str) -> tuple[str, dict[str, str]]:
    """The keepalive source and each case's source in the proxy's /24."""
    network = proxy_host.rsplit(".", 1)[0]
    host, in_group, assigned = FIRST_CASE_HOST, 0, {}
    for case in CASES:
        if host > LAST_CASE_HOST:
            raise ValueError(
                f"{len(CASES)} cases do not fit hosts {FIRST_CASE_HOST}-{LAST_CASE_HOST}"
            )
        assigned[case.name] = f"{network}.{host}"
        in_group += 1
        if in_group == CASES_PER_SOURCE or case.bans_source:
            host, in_group = host + 1, 0
    return f"{network}.{KEEPALIVE_HOST}", assigned


@dataclass
class Outcome:
    """What came back for one case: every status line, in order."""

    responses: list[bytes]

    @property
    def statuses(self) -> list[int]:
        return [int(line[8:11]) for line in self.responses]

    @property
    def final(self) -> int | None:
        finals = [s for s in self.statuses if s >= 200]
        return finals[0] if finals else None


def send(case: Case, target: Target, wait_s: float = ANSWER_WAIT_S) -> Outcome:
    """Send ``case`` from ``target.source_host`` over its transport; collect the answers
    until a final one arrives or ``wait_s`` passed."""
    require_loopback(target.proxy_host)
    require_loopback(target.source_host)
    if case.transport == "TCP":
        return _send_tcp(case, target, wait_s)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((target.source_host, 0))
        bound = replace(target, source_port=sock.getsockname()[1], transport="UDP")
        sock.sendto(case.build(bound), (target.proxy_host, target.proxy_port))
        return Outcome(_collect(lambda: sock.recv(65535), sock, wait_s, per_datagram=True))


def _send_tcp(case: Case, target: Target, wait_s: float) -> Outcome:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((target.source_host, 0))
        sock.settimeout(wait_s)
        sock.connect((target.proxy_host, target.proxy_port))
        bound = replace(target, source_port=sock.getsockname()[1], transport="TCP")
        sock.sendall(case.build(bound))
        return Outcome(_collect(lambda: sock.recv(65535), sock, wait_s, per_datagram=False))


def _collect(receive, sock: socket.socket, wait_s: float, per_datagram: bool) -> list[bytes]:
    deadline = time.monotonic() + wait_s
    received = b""
    lines: list[bytes] = []
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            chunk = receive()
        except (TimeoutError, ConnectionError):
            break
        if not chunk:
            break
        if per_datagram:
            match = STATUS_LINE.match(chunk)
            lines += [match.group(0)] if match else []
        else:
            received += chunk
            lines = [m.group(0) for m in STATUS_LINE.finditer(received)]
        if any(int(line[8:11]) >= 200 for line in lines):
            break
    return lines


def keepalive(proxy_host: str, proxy_port: int, source_host: str, tries: int = 3) -> int | None:
    """Status of an OPTIONS to the proxy itself (no user part), as a phone's keepalive."""
    check = Case("keepalive", "check", "OPTIONS", lambda t: request(t), keepalive=True)
    target = Target(
        proxy_host, proxy_port, domain=proxy_host, user="keepalive", source_host=source_host
    )
    for _ in range(tries):
        final = send(check, replace(target, token=uuid.uuid4().hex[:16]), wait_s=1.0).final
        if final is not None:
            return final
    return None


def is_token(method: str) -> bool:
    return bool(TOKEN.match(method))
