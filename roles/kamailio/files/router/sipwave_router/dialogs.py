"""Dialog tokens: proof that an in-dialog request follows a route set this proxy created, sent
by one end of that dialog to its other end.

No dialog module is loaded, so the proxy keeps no state per call. Each branch of an INVITE or
SUBSCRIBE it relays is record-routed with ``;swt=<stamp>.<mac>.<mac>``:

- ``stamp``: when the branch left, in seconds since the epoch (hex);
- one MAC per end of the dialog: HMAC-SHA256 under the proxy's own key of the Call-ID, the
  stamp and the address of that end, truncated to 96 bits in hex. The caller's end is the
  address the request came from, the callee's end the address the branch went to (its
  destination, else its request URI).

Both ends send that Record-Route back as their Route. A request that names this proxy in its
top Route is followed only when (``follows``):

- the token is no older than the dialog lifetime (a week by default);
- the request comes from one end of the dialog (its source has one of the two MACs), and
- it goes to the other end (its next hop has the other MAC).

A peer of the proxy (a carrier, the PBX, a configured destination) may send or answer from
another of its addresses than the one recorded: a source that is a peer stands for an end
recorded at any peer's address, and a next hop that is a peer is the other end when that end
was recorded at a peer's address. Peers are bound by the token too: UDP from a carrier's
address is easily forged, so a request from it reaches only an end of a dialog whose token it
carries, never a Route or Request-URI of its choosing.

A subscriber who saw a token (its own calls' Record-Routes) can therefore reach only the
other end of that call with it; anyone else cannot use it at all. The addresses are bound,
not the ports: a phone keeps its calls across a new source port, not across a new address.

The key is a file on the host (``dialog_key_file`` in settings.json, created once by the
kamailio role, 0600 for the kamailio user, hex): it survives restarts and releases, so calls
in progress keep working across both. Tokens of the release before this one (an HMAC of the
Call-ID alone, 128 bits) are still followed, but only towards a peer: a call in progress
across the upgrade can still be ended at its carrier.
"""

import hmac
import os
import re
from pathlib import Path

ROUTE_PARAM = "swt"
MAC_HEX_LENGTH = 24
# A token's stamp may be this far in the future (the workers of a host share its clock; the
# margin covers a clock stepped back between the branch and the in-dialog request).
CLOCK_SKEW_S = 300
# The key file holds at least this many random bytes, as hex.
KEY_BYTES_MIN = 32
TOKEN = re.compile(
    rf"([0-9a-f]{{1,12}})\.([0-9a-f]{{{MAC_HEX_LENGTH}}})\.([0-9a-f]{{{MAC_HEX_LENGTH}}})"
)
# Tokens of the previous release: HMAC-SHA256 of the Call-ID alone, 128 bits in hex.
CALL_ID_TOKEN = re.compile(r"[0-9a-f]{32}")


def load_key(path: str | None) -> bytes:
    """The dialog key from ``path``; a random key of this process when no file is named.

    Only unit tests and check runs go without a file: the role always names one, and every
    worker of a Kamailio reads the same file, so all of them accept each other's tokens.
    A file that exists but is not a long enough hex key is an error naming the file.
    """
    if not path:
        return os.urandom(KEY_BYTES_MIN)
    text = Path(path).read_text(encoding="ascii").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{path}: line 1: the dialog key is not hex") from None
    if len(key) < KEY_BYTES_MIN:
        raise ValueError(f"{path}: line 1: the dialog key has fewer than {KEY_BYTES_MIN} bytes")
    return key


def _mac(key: bytes, call_id: str, stamp: str, end: str) -> str:
    message = "\0".join((call_id, stamp, end)).encode("utf-8", "surrogateescape")
    return hmac.digest(key, message, "sha256").hex()[:MAC_HEX_LENGTH]


def token(key: bytes, call_id: str, caller: str, callee: str, now: float) -> str:
    """The token of one branch: ``caller`` and ``callee`` are the ends' addresses, each
    written once (routing.normalise_host)."""
    stamp = format(int(now), "x")
    return f"{stamp}.{_mac(key, call_id, stamp, caller)}.{_mac(key, call_id, stamp, callee)}"


def call_id_token(key: bytes, call_id: str) -> str:
    """The previous release's token: the Call-ID's HMAC alone."""
    return hmac.digest(key, call_id.encode("utf-8", "surrogateescape"), "sha256").hex()[:32]


def route_token(route_uri: str) -> str:
    """The value of the ``swt`` parameter of a Route URI; "" when it has none."""
    for param in route_uri.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == ROUTE_PARAM:
            return value.strip()
    return ""


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("ascii"), expected.encode("ascii"))


def follows(
    key: bytes,
    call_id: str,
    route_uri: str,
    source: str,
    next_hop: str,
    *,
    peers: frozenset[str],
    now: float,
    lifetime: int,
) -> bool:
    """Whether the top Route's token lets ``source`` reach ``next_hop`` (both addresses written
    once; ``peers`` too) in the dialog of ``call_id`` at ``now``: see the module's
    description."""
    given = route_token(route_uri).lower()
    if not given.isascii() or not next_hop:
        return False
    match = TOKEN.fullmatch(given)
    if match is None:
        return (
            next_hop in peers
            and CALL_ID_TOKEN.fullmatch(given) is not None
            and _same(given, call_id_token(key, call_id))
        )
    stamp, first, second = match.groups()
    if not now - lifetime <= int(stamp, 16) <= now + CLOCK_SKEW_S:
        return False

    # Each address's MAC once (the two orders below would compute the source's twice); the
    # peers' only when a peer stands for an end.
    source_mac, next_hop_mac = (_mac(key, call_id, stamp, a) for a in (source, next_hop))
    peer_macs: list[str] = []

    def recorded_at_a_peer(mac: str) -> bool:
        if not peer_macs:
            peer_macs.extend(_mac(key, call_id, stamp, peer) for peer in peers)
        return any(_same(mac, peer_mac) for peer_mac in peer_macs)

    source_is_peer, next_hop_is_peer = source in peers, next_hop in peers
    for here, there in ((first, second), (second, first)):
        if not (_same(here, source_mac) or (source_is_peer and recorded_at_a_peer(here))):
            continue
        if _same(there, next_hop_mac) or (next_hop_is_peer and recorded_at_a_peer(there)):
            return True
    return False
