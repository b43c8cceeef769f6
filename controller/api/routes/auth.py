"""Log in (OAuth2 password flow), API tokens, and operator accounts."""

from __future__ import annotations

import math
import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import select

from controller import policy
from controller.api.auth import DB, Admin, IdPath, Principal, Viewer, audit, not_found
from controller.api.deps import State
from controller.api.schemas import TokenIn, TokenOut, UserIn, UserOut
from controller.registry.models import ApiToken, Owner, User
from controller.security import dummy_hash, hash_password, new_token, verify_password

router = APIRouter(prefix="/api", tags=["accounts"])


@router.post(
    "/auth/token",
    response_model=TokenOut,
    summary="Log in: a short-lived token",
    responses={
        401: {"description": "Wrong username or password"},
        429: {"description": "Too many failed logins: wait Retry-After seconds"},
    },
)
def login(
    db: DB,
    state: State,
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> TokenOut | JSONResponse:
    ip = request.client.host if request.client else "unknown"
    wait = state.login_guard.wait_s(form.username, ip)
    if wait > 0:
        return JSONResponse(
            {"detail": f"too many failed logins: try again in {math.ceil(wait)} s"},
            status.HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(math.ceil(wait))},
        )
    user = db.scalar(select(User).where(User.username == form.username))
    # an unknown account is checked against a dummy hash: it takes as long as a known one
    good = verify_password(form.password, user.password_hash if user else dummy_hash())
    if user is None or not user.active or not good:
        state.login_guard.failed(form.username, ip)
        reason = "unknown account" if user is None else "disabled" if not user.active else ""
        audit(
            db,
            form.username[:100],
            "login.failed",
            "user",
            user.id if user else "-",
            user.owner_id if user else None,
            ip=ip,
            reason=reason or "wrong password",
        )
        # returned, not raised: the audit entry is committed with the request
        return JSONResponse(
            {"detail": "wrong username or password"},
            status.HTTP_401_UNAUTHORIZED,
            headers={"WWW-Authenticate": "Bearer"},
        )
    state.login_guard.succeeded(form.username, ip)
    token, digest = new_token()
    expires = time.time() + state.settings.login_token_ttl_s
    db.add(
        ApiToken(
            user_id=user.id, name="login", token_hash=digest, prefix=token[:12], expires_at=expires
        )
    )
    return TokenOut(access_token=token, expires_at=expires)


@router.get("/auth/me", response_model=UserOut, summary="Who the token belongs to")
def me(db: DB, p: Viewer) -> User:
    user = db.get(User, p.user_id)
    assert user is not None
    return user


@router.post(
    "/auth/tokens",
    response_model=TokenOut,
    status_code=201,
    summary="A named API token for scripts (shown once)",
)
def create_token(db: DB, p: Viewer, body: TokenIn) -> TokenOut:
    return issue_token(db, p, p.user_id, body)


def issue_token(db: DB, p: Principal | str, user_id: int, body: TokenIn) -> TokenOut:
    token, digest = new_token()
    expires = time.time() + body.expires_days * 86400 if body.expires_days else None
    db.add(
        ApiToken(
            user_id=user_id,
            name=body.name,
            token_hash=digest,
            prefix=token[:12],
            expires_at=expires,
        )
    )
    audit(db, p, "token.create", "user", user_id, name=body.name)
    return TokenOut(access_token=token, expires_at=expires)


@router.delete("/auth/tokens", status_code=204, summary="Revoke every token of the caller")
def revoke_tokens(db: DB, p: Viewer) -> None:
    for tok in db.scalars(select(ApiToken).where(ApiToken.user_id == p.user_id)):
        tok.revoked = True
    audit(db, p, "token.revoke_all", "user", p.user_id)


@router.get("/users", response_model=list[UserOut], summary="Operator accounts")
def list_users(db: DB, p: Admin) -> list[User]:
    q = select(User).where(policy.visible_accounts(p)).order_by(User.id)
    return list(db.scalars(q))


@router.post("/users", response_model=UserOut, status_code=201, summary="Create an account")
def create_user(db: DB, p: Admin, body: UserIn) -> User:
    if not policy.manages_account(p, body.owner_id):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "owner_id: only your own owner")
    if body.owner_id is not None and db.get(Owner, body.owner_id) is None:
        raise not_found("owner", body.owner_id)
    if db.scalar(select(User.id).where(User.username == body.username)) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"username {body.username!r} is taken")
    user = User(
        username=body.username,
        password_hash=hash_password(body.password),
        role=body.role,
        owner_id=body.owner_id,
    )
    db.add(user)
    db.flush()
    audit(db, p, "user.create", "user", user.id, role=body.role, owner_id=body.owner_id)
    return user


@router.post("/users/{user_id}/disable", response_model=UserOut, summary="Disable an account")
def disable_user(db: DB, p: Admin, user_id: IdPath) -> User:
    user = db.get(User, user_id)
    if user is None or not policy.manages_account(p, user.owner_id):
        raise not_found("user", user_id)
    user.active = False
    audit(db, p, "user.disable", "user", user_id)
    return user
