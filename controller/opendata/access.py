"""Who is asking the open-data API: nobody (the public) or the holder of an operator token.

No account is needed; a bearer token of an active operator account adds restricted streams (of
its own owner when the account is owner-scoped). A token that is not valid is refused (401)
rather than silently treated as public, so a script with an expired token notices. The token is
looked up on every request (one indexed read), not cached: a token revoked or an account
disabled, by this process or another, is refused from the next request on.
"""

from __future__ import annotations

import time

from sqlalchemy import select

from controller.opendata.catalog import PUBLIC, Access
from controller.registry.db import Registry
from controller.registry.models import ApiToken, User
from controller.security import token_hash

# longer than any token we issue by far; longer ones are refused before they are hashed
MAX_AUTHORIZATION = 512


class InvalidToken(PermissionError):
    """HTTP 401."""


class Tokens:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def access(self, authorization: str | None) -> tuple[Access, str | None]:
        """Who asks, and the hash of their token (None for the public)."""
        if not authorization:
            return PUBLIC, None
        if len(authorization) > MAX_AUTHORIZATION:
            raise InvalidToken("Authorization header too long")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("Authorization must be 'Bearer <token>'")
        h = token_hash(token.strip())
        found = self._lookup(h)
        if found is None:
            raise InvalidToken("unknown, expired or revoked bearer token")
        return found, h

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
