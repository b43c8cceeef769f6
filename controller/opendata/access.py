"""Who is asking the open-data API: nobody (the public) or the holder of an operator token.

No account is needed; a bearer token of an active operator account adds restricted streams (of
its own owner when the account is owner-scoped). A token that is not valid is refused (401)
rather than silently treated as public, so a script with an expired token notices. Lookups are
cached for a minute, keyed by the token's hash.
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import select

from controller.opendata.catalog import PUBLIC, Access
from controller.registry.db import Registry
from controller.registry.models import ApiToken, User
from controller.security import token_hash


class InvalidToken(PermissionError):
    """HTTP 401."""


class TokenCache:
    def __init__(self, registry: Registry, ttl_s: float = 60.0) -> None:
        self.registry = registry
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, Access | None]] = {}
        self._lock = threading.Lock()

    def access(self, authorization: str | None) -> Access:
        if not authorization:
            return PUBLIC
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("Authorization must be 'Bearer <token>'")
        h = token_hash(token.strip())
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(h)
        if hit is None or now - hit[0] > self.ttl_s:
            hit = (now, self._lookup(h))
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[h] = hit
        if hit[1] is None:
            raise InvalidToken("unknown, expired or revoked bearer token")
        return hit[1]

    def _lookup(self, h: str) -> Access | None:
        with self.registry.session() as db:
            row = db.execute(
                select(ApiToken, User)
                .join(User, User.id == ApiToken.user_id)
                .where(ApiToken.token_hash == h)
            ).first()
            if row is None:
                return None
            tok, user = row
            if tok.revoked or not user.active:
                return None
            if tok.expires_at is not None and tok.expires_at < time.time():
                return None
            return Access(token=True, owner_id=user.owner_id)
