# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every credential sipwave derives, in one place: SIP digest hashes (HA1, HA1b), the phase-2
password of an account whose export only had an HA1, a phone's provisioning token, and the
secret code of a migration code sipwave issues.

The derived values are secrets: callers never log, report or diff them. The HMAC
derivations depend only on the site secret and the login, MAC or migration code, so every run
(and the notification mail, and the phone's URL) gets the same value without storing it anywhere.
"""

from __future__ import annotations

import hashlib
import hmac

# A phone's token is the first TOKEN_LENGTH hex digits of HMAC-SHA256(site secret,
# TOKEN_PREFIX + lower-case MAC); the phase-2 password uses its own prefix, so the two
# derivations never give the same value for one secret.
TOKEN_PREFIX = "provisioning-token:"
TOKEN_LENGTH = 32
PHASE2_PREFIX = "phase2:"
STAFF_PREFIX = "staff:"
PORT_SECRET_PREFIX = "port-secret:"
PORT_SECRET_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # read out on the phone: no 0/O, 1/I
PASSWORD_ALPHABET = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


class CredentialError(ValueError):
    """A derivation that cannot be made (no site secret); the message never holds a secret."""


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def ha1(username: str, domain: str, password: str) -> str:
    """MD5(username:realm:password), the hash Kamailio's auth_db checks (realm = domain)."""
    return _md5(f"{username}:{domain}:{password}")


def ha1b(username: str, domain: str, password: str) -> str:
    """The HA1 of phones that send user@domain as the digest username."""
    return _md5(f"{username}@{domain}:{domain}:{password}")


def _hmac(site_secret: str, message: str, needed_for: str) -> bytes:
    if not site_secret:
        raise CredentialError(f"a site secret is needed to {needed_for}")
    return hmac.new(site_secret.encode(), message.encode(), hashlib.sha256).digest()


def _password(site_secret: str, message: str, needed_for: str, length: int) -> str:
    value = int.from_bytes(_hmac(site_secret, message, needed_for), "big")
    chars = []
    for _ in range(length):
        value, index = divmod(value, len(PASSWORD_ALPHABET))
        chars.append(PASSWORD_ALPHABET[index])
    return "".join(chars)


def generated_password(site_secret: str, login: str, length: int = 16) -> str:
    """The phase-2 password of an account whose export only had an HA1 (no look-alike
    characters: the customer types it from a mail)."""
    return _password(site_secret, PHASE2_PREFIX + login, "generate phase-2 passwords", length)


def staff_password(site_secret: str, login: str, length: int = 16) -> str:
    """The SIP password of a staff member's account (playbooks/user_add.yml): derived under
    its own prefix, so it never equals a customer's generated phase-2 password, and the
    phone's files and the settings mail get it again without it being stored."""
    return _password(site_secret, STAFF_PREFIX + login, "derive staff passwords", length)


def port_secret(site_secret: str, migration_code: str, length: int = 10) -> str:
    """The secret code of a migration code sipwave issued to a customer who leaves: derived,
    so the mail that shows it once and every proxy that stores its hash agree without the
    secret being stored or passed anywhere."""
    value = int.from_bytes(
        _hmac(site_secret, PORT_SECRET_PREFIX + migration_code, "issue secret codes"), "big"
    )
    chars = []
    for _ in range(length):
        value, index = divmod(value, len(PORT_SECRET_ALPHABET))
        chars.append(PORT_SECRET_ALPHABET[index])
    return "".join(chars)


def device_token(site_secret: str, mac: str) -> str:
    """The device's path token: HMAC-SHA256 of its MAC under the site secret, 32 hex digits."""
    digest = _hmac(site_secret, TOKEN_PREFIX + mac.lower(), "derive the devices' tokens")
    return digest.hex()[:TOKEN_LENGTH]
