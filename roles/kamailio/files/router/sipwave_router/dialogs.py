"""Dialog tokens: proof that an in-dialog request follows a route set this proxy created.

No dialog module is loaded, so the proxy keeps no state per call. When it record-routes an
INVITE or SUBSCRIBE, its Record-Route carries ``;swt=<token>``: an HMAC-SHA256 of the
request's Call-ID under the proxy's own key, truncated to 128 bits and written in hex. Both
ends of the dialog send that Record-Route back as their Route, so every in-dialog request of
the dialog carries the token of its own Call-ID; nobody without the key can write one for a
Call-ID of their choosing. A request from anyone but a trusted peer that names this proxy in
its top Route without the right token is refused (``403 Route Not Followed``).

The key is a file on the host (``dialog_key_file`` in settings.json, created once by the
kamailio role, 0600 for the kamailio user, hex): it survives restarts and releases, so calls
in progress keep working across both. A dialog created before the key existed has no token:
its in-dialog requests from subscribers are refused, those of trusted peers are not.
"""

import hmac
import os
from pathlib import Path

ROUTE_PARAM = "swt"
TOKEN_HEX_LENGTH = 32
# The key file holds at least this many random bytes, as hex.
KEY_BYTES_MIN = 32


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


def token(key: bytes, call_id: str) -> str:
    """The token of a Call-ID: what the Record-Route carries and the Route must bring back."""
    digest = hmac.digest(key, call_id.encode("utf-8", "surrogateescape"), "sha256")
    return digest.hex()[:TOKEN_HEX_LENGTH]


def route_token(route_uri: str) -> str:
    """The value of the ``swt`` parameter of a Route URI; "" when it has none."""
    for param in route_uri.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == ROUTE_PARAM:
            return value.strip()
    return ""


def token_matches(key: bytes, call_id: str, route_uri: str) -> bool:
    """Whether the top Route's token is the Call-ID's, compared in constant time."""
    given = route_token(route_uri).lower().encode("ascii", "replace")
    return hmac.compare_digest(given, token(key, call_id).encode("ascii"))
