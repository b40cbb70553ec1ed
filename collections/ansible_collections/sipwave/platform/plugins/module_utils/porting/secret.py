# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The secret code of a migration code, kept and sent only as a salted slow hash.

The hash is scrypt with the dial-in PINs' cost, salted with a digest of the (normalised)
migration code it belongs to. Both operators can therefore compute the same value from the
secret the customer holds. The gaining operator hashes what the customer gave it, keeps the
hash, and sends in each request an HMAC of that request (recipient, reference, attempt, code)
keyed with the hash; the losing operator, which stored the hash when it issued the code,
computes the same HMAC and compares. Neither keeps or sends the secret itself, and a proof
copied out of one request does not fit another.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from ansible_collections.sipwave.platform.plugins.module_utils.dialin_db import (
    SCRYPT_N,
    SCRYPT_P,
    SCRYPT_R,
)

SECRET_PATTERN = re.compile(r"[A-Za-z0-9]{4,32}")
_PROOF = re.compile(r"scrypt\$[0-9]+\$[0-9]+\$[0-9]+\$[0-9a-f]{32}\$[0-9a-f]{128}")
_BOUND = re.compile(r"hmac-sha256\$[0-9a-f]{64}")


class SecretError(ValueError):
    """A secret code or proof of the wrong form; the message never holds the value."""


def _salt(code: str) -> bytes:
    return hashlib.sha256(b"sipwave port secret\0" + code.encode()).digest()[:16]


def proof(secret: str, code: str) -> str:
    """The stored and exchanged form of ``secret`` for the normalised migration ``code``."""
    if not isinstance(secret, str) or not SECRET_PATTERN.fullmatch(secret):
        raise SecretError("secret code: 4 to 32 letters or digits")
    salt = _salt(code)
    digest = hashlib.scrypt(
        secret.upper().encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=64
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def check_proof(value: str) -> str:
    if not isinstance(value, str) or not _BOUND.fullmatch(value):
        raise SecretError("secret proof: not of the exchange's form (hmac-sha256$ and 64 hex)")
    return value


def bound_proof(stored: str, *, recipient: str, ref: str, attempt: int, code: str) -> str:
    """What a request carries: an HMAC of the request's identity keyed with the scrypt hash.
    The donor, which stored the same hash, checks it; a proof copied from one request is
    worth nothing in another (other recipient, reference, attempt or code)."""
    digest = bytes.fromhex(stored.split("$")[5])
    message = f"{recipient}|{ref}|{attempt}|{code}".encode()
    return "hmac-sha256$" + hmac.new(digest, message, hashlib.sha256).hexdigest()


def proofs_match(given: str, stored: str, **request: object) -> bool:
    """Whether a request's proof was made from the secret whose hash is ``stored``."""
    if not isinstance(given, str) or not _BOUND.fullmatch(given) or not _PROOF.fullmatch(stored):
        return False
    return hmac.compare_digest(given, bound_proof(stored, **request))
