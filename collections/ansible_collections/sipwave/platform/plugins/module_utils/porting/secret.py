# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The secret code of a migration code, kept and sent only as a salted slow hash.

The hash is scrypt with the dial-in PINs' cost, salted with a digest of the (normalised)
migration code it belongs to. Both operators can therefore compute the same value from the
secret the customer holds: the gaining operator hashes what the customer gave it and sends the
hash in its request; the losing operator, which stored the hash when it issued the code,
compares. Neither keeps or sends the secret itself, and the hash of one code's secret says
nothing about another code's.
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
    if not isinstance(value, str) or not _PROOF.fullmatch(value):
        raise SecretError("secret proof: not an scrypt hash of the exchange's form")
    return value


def proofs_match(given: str, stored: str, code: str) -> bool:
    """Whether a request's proof is the stored one for ``code`` (constant time)."""
    try:
        check_proof(given)
    except SecretError:
        return False
    if given.split("$")[4] != _salt(code).hex():
        return False
    return hmac.compare_digest(given, stored)
