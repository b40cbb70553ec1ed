"""SIPp scenarios for dial-in calls, written per call from what the caller does.

A caller rings the dial-in number through the proxy, optionally authenticating as a
subscriber, and after the answer keys digits (each entry ends with #) as SIP INFO
(application/dtmf-relay): sip-tester ships only fixed RFC 4733 recordings, one per digit with
fixed RTP timestamps and sequence numbers, so replaying the same digit twice looks like a
retransmission to the receiver, while INFO carries every digit as its own transaction.

The call then ends as the test expects: refused before answer (a final error code), hung up
by the PBX, or connected and hung up by the caller after ``hold_ms``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

SDP = """Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=- 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8 0
      a=rtpmap:8 PCMA/8000
      a=rtpmap:0 PCMU/8000
"""


@dataclass
class DialinCall:
    caller: str  # From user
    dialin: str  # called number
    domain: str  # From/To domain
    entries: list[str] = field(default_factory=list)  # each keyed, then '#'
    expect: str = "connected"  # connected | hungup | <SIP code>, e.g. "403"
    hold_ms: int = 3000
    credentials: str | None = None  # sipp.credentials(...) for a subscriber
    extra_headers: list[str] = field(default_factory=list)
    # Sent before the credentials in the authenticated INVITE (a forged first header).
    headers_before_credentials: list[str] = field(default_factory=list)
    # Lets the PBX finish the prompt it plays after an entry ("wrong PIN" takes 4.6 s):
    # digits keyed during it are discarded.
    entry_pause_ms: int = 5500


def _message(lines: str) -> str:
    return f'  <send retrans="500">\n    <![CDATA[\n      {lines}\n    ]]>\n  </send>\n'


def _headers(call: DialinCall, cseq: int, method: str, *, in_dialog: bool) -> str:
    to_tag = "[peer_tag_param]" if in_dialog else ""
    uri = "[next_url]" if in_dialog else f"sip:{call.dialin}@{call.domain}"
    routes = "\n      [routes]" if in_dialog else ""
    return (
        f"{method} {uri} SIP/2.0\n"
        "      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n"
        f"      Max-Forwards: 70{routes}\n"
        f"      From: <sip:{call.caller}@{call.domain}>;tag=[pid]-[call_number]\n"
        f"      To: <sip:{call.dialin}@{call.domain}>{to_tag}\n"
        "      Call-ID: [call_id]\n"
        f"      CSeq: {cseq} {method}\n"
        "      Contact: <sip:[local_ip]:[local_port]>\n"
        "      User-Agent: sipwave-tests"
    )


def _invite(call: DialinCall, cseq: int, credentials: str | None) -> str:
    extra = "".join(f"\n      {h}" for h in call.extra_headers)
    auth = ""
    if credentials:
        auth = "".join(f"\n      {h}" for h in [*call.headers_before_credentials, credentials])
    return _message(
        _headers(call, cseq, "INVITE", in_dialog=False) + auth + extra + "\n      " + SDP
    )


def _ack_for_error(call: DialinCall, cseq: int) -> str:
    return (
        "  <send>\n    <![CDATA[\n      ACK "
        f"sip:{call.dialin}@{call.domain} SIP/2.0\n"
        "      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n"
        "      Max-Forwards: 70\n"
        f"      From: <sip:{call.caller}@{call.domain}>;tag=[pid]-[call_number]\n"
        f"      To: <sip:{call.dialin}@{call.domain}>[peer_tag_param]\n"
        "      Call-ID: [call_id]\n"
        f"      CSeq: {cseq} ACK\n"
        "      Content-Length: 0\n\n    ]]>\n  </send>\n"
    )


def scenario(call: DialinCall) -> str:
    parts = ['<?xml version="1.0" encoding="UTF-8" ?>\n<scenario name="dial-in">\n']
    cseq = 1
    parts.append(_invite(call, cseq, None))
    parts.append('  <recv response="100" optional="true"/>\n')
    if call.credentials:
        parts.append('  <recv response="407" auth="true"/>\n')
        parts.append(_ack_for_error(call, cseq))
        cseq += 1
        parts.append(_invite(call, cseq, call.credentials))
        parts.append('  <recv response="100" optional="true"/>\n')
    parts.append('  <recv response="183" optional="true"/>\n')
    parts.append('  <recv response="180" optional="true"/>\n')
    if call.expect.isdigit():
        parts.append(f'  <recv response="{call.expect}"/>\n')
        parts.append(_ack_for_error(call, cseq))
        parts.append("</scenario>\n")
        return "".join(parts)
    parts.append('  <recv response="200" rtd="true" rrs="true"/>\n')
    parts.append(
        "  <send>\n    <![CDATA[\n      "
        + _headers(call, cseq, "ACK", in_dialog=True)
        + "\n      Content-Length: 0\n\n    ]]>\n  </send>\n"
    )
    parts.append('  <pause milliseconds="1500"/>\n')
    for number, entry in enumerate(call.entries, 1):
        for digit in entry + "#":
            cseq += 1
            parts.append(
                _message(
                    _headers(call, cseq, "INFO", in_dialog=True)
                    + "\n      Content-Type: application/dtmf-relay\n"
                    "      Content-Length: [len]\n\n"
                    f"      Signal={digit}\n      Duration=160\n"
                )
            )
            parts.append('  <recv response="200"/>\n')
            parts.append('  <pause milliseconds="120"/>\n')
        if number < len(call.entries):
            parts.append(f'  <pause milliseconds="{call.entry_pause_ms}"/>\n')
    if call.expect == "hungup":
        parts.append('  <recv request="BYE" timeout="15000"/>\n')
        parts.append(
            "  <send>\n    <![CDATA[\n      SIP/2.0 200 OK\n      [last_Via:]\n      [last_From:]\n"
            "      [last_To:]\n      [last_Call-ID:]\n      [last_CSeq:]\n"
            "      Content-Length: 0\n\n    ]]>\n  </send>\n"
        )
    else:
        parts.append(f'  <pause milliseconds="{call.hold_ms}"/>\n')
        cseq += 1
        parts.append(
            _message(_headers(call, cseq, "BYE", in_dialog=True) + "\n      Content-Length: 0\n")
        )
        parts.append('  <recv response="200" crlf="true"/>\n')
    parts.append("</scenario>\n")
    return "".join(parts)


def write(call: DialinCall) -> Path:
    """The scenario in a file of its own; pass its path to sipp.run()."""
    path = Path(tempfile.mkdtemp(prefix="sipwave-dialin-")) / "dialin.xml"
    path.write_text(scenario(call))
    return path
