"""Who is asking: bearer tokens to principals, roles, owner scope, and the audit log.

Every operator route depends on ``require(<role>)``. An account with an owner is scoped: the
routes filter by ``principal.owner_id`` so it sees and steers only its own owner's poles, modules,
data and alarms, by asking ``controller.policy`` (one function per decision).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, status
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.api.deps import State
from controller.registry.models import ApiToken, AuditEntry, User
from controller.security import role_at_least, token_hash

IdPath = Annotated[int, Path(ge=1, le=2**53)]
oauth2 = OAuth2PasswordBearer(tokenUrl="/api/auth/token", auto_error=False)


@dataclass(frozen=True)
class Principal:
    user_id: int
    username: str
    role: str
    owner_id: int | None  # None: the municipality's (unscoped); see controller.policy


async def admitted(state: State) -> AsyncIterator[None]:
    """A turn to use the registry (controller/api/admission.py), waited for on the event loop."""
    await state.admission.enter()
    try:
        yield
    finally:
        state.admission.leave()


def get_session(
    state: State, _turn: Annotated[None, Depends(admitted, scope="function")]
) -> Iterator[Session]:
    """One transaction per request: committed when the route returns, rolled back on error."""
    with state.transaction() as s:
        yield s


# scope="function": commit before the response goes out, so a client that got a 2xx finds the
# change in its next request (the default, "request", commits after the response is sent)
DB = Annotated[Session, Depends(get_session, scope="function")]


def current_principal(db: DB, token: Annotated[str | None, Depends(oauth2)]) -> Principal:
    unauthorised = HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "missing, expired or revoked bearer token",
        headers={"WWW-Authenticate": "Bearer"},
    )
    if not token:
        raise unauthorised
    row = db.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == token_hash(token))
    ).first()
    if row is None:
        raise unauthorised
    tok, user = row
    now = time.time()
    if tok.revoked or not user.active or (tok.expires_at is not None and tok.expires_at < now):
        raise unauthorised
    if tok.last_used is None or now - tok.last_used > 60:  # keep writes rare
        tok.last_used = now
    return Principal(user.id, user.username, user.role, user.owner_id)


def require(role: str) -> Callable[..., Principal]:
    def dependency(p: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not role_at_least(p.role, role):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"needs the {role} role or higher")
        return p

    return dependency


Viewer = Annotated[Principal, Depends(require("viewer"))]
Technician = Annotated[Principal, Depends(require("technician"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Admin = Annotated[Principal, Depends(require("admin"))]


def audit(
    db: Session,
    who: Principal | str,
    action: str,
    target_type: str,
    target_id: object,
    scope_owner: int | None = None,
    **detail: Any,
) -> None:
    """Record a change in the same transaction as the change itself: both or neither."""
    db.add(
        AuditEntry(
            actor=who if isinstance(who, str) else who.username,
            action=action,
            target_type=target_type,
            target_id=str(target_id),
            owner_id=scope_owner,
            detail=detail,
        )
    )


def not_found(what: str, ident: object) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} {ident!r} not found")


def forbidden(reason: str) -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, reason)
