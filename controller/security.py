"""Operator accounts: password hashing, bearer tokens, roles.

Passwords are hashed with scrypt from the standard library (a memory-hard KDF; no extra
dependency to keep patched). Tokens are opaque random strings, of which only the SHA-256 is
stored: unlike a signed JWT, a token can be revoked at once and a stolen database holds no
usable token. Both the OAuth2 password flow (short-lived login tokens) and named API tokens for
scripts are the same kind of token.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

ROLE_RANK = {"viewer": 0, "technician": 1, "operator": 2, "admin": 3}
TOKEN_PREFIX = "spt_"
_N, _R, _P = 2**14, 8, 1


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    dk = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(dk).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, dk = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(base64.b64decode(dk)),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(dk))


@functools.cache
def dummy_hash() -> str:
    """A hash no password matches, checked for unknown accounts so that they take as long to
    refuse as known ones (the answer time must not tell which accounts exist)."""
    return hash_password(secrets.token_urlsafe(32))


def new_token() -> tuple[str, str]:
    """(token to show once, its hash to store)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, token_hash(token)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def role_at_least(role: str, minimum: str) -> bool:
    return ROLE_RANK.get(role, -1) >= ROLE_RANK[minimum]
