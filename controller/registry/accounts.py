"""Accounts from the command line and the dev stack (the API has its own routes)."""

from __future__ import annotations

import time

from sqlalchemy import select

from controller.registry.db import Registry
from controller.registry.models import ApiToken, AuditEntry, Owner, User
from controller.security import ROLE_RANK, hash_password, new_token


def create_owner(reg: Registry, slug: str, name: str, kind: str) -> int:
    """Add an organisation (an owner-scoped account needs one first); an existing slug is an
    error rather than a silent rename."""
    with reg.session() as db:
        if db.scalar(select(Owner.id).where(Owner.slug == slug)) is not None:
            raise ValueError(f"slug: owner {slug!r} exists already")
        owner = Owner(slug=slug, name=name, kind=kind)
        db.add(owner)
        db.flush()
        db.add(
            AuditEntry(
                actor="cli",
                action="owner.create",
                target_type="owner",
                target_id=str(owner.id),
                detail={"slug": slug, "name": name, "kind": kind},
            )
        )
        return owner.id


def create_user(
    reg: Registry, username: str, password: str, role: str, owner: str | None = None
) -> int:
    """Create (or reset the password and role of) an account; returns its id."""
    if role not in ROLE_RANK:
        raise ValueError(f"role: one of {', '.join(ROLE_RANK)}")
    with reg.session() as db:
        owner_id = None
        if owner is not None:
            owner_id = db.scalar(select(Owner.id).where(Owner.slug == owner))
            if owner_id is None:
                raise ValueError(
                    f"owner: no owner with slug {owner!r} (add it: streetpole create-owner {owner})"
                )
        user = db.scalar(select(User).where(User.username == username))
        if user is None:
            user = User(username=username, password_hash="", role=role, owner_id=owner_id)
            db.add(user)
        user.password_hash = hash_password(password)
        user.role, user.owner_id, user.active = role, owner_id, True
        db.flush()
        db.add(
            AuditEntry(
                actor="cli",
                action="user.create",
                target_type="user",
                target_id=str(user.id),
                detail={"role": role, "owner": owner},
            )
        )
        return user.id


def create_token(reg: Registry, username: str, name: str, days: int | None = None) -> str:
    with reg.session() as db:
        user = db.scalar(select(User).where(User.username == username))
        if user is None:
            raise ValueError(f"username: no account {username!r}")
        token, digest = new_token()
        expires = time.time() + days * 86400 if days else None
        db.add(
            ApiToken(
                user_id=user.id, name=name, token_hash=digest, prefix=token[:12], expires_at=expires
            )
        )
        db.add(
            AuditEntry(
                actor="cli",
                action="token.create",
                target_type="user",
                target_id=str(user.id),
                detail={"name": name},
            )
        )
        return token


def account_of(reg: Registry, username: str) -> tuple[str, str | None] | None:
    """An account's role and owner slug, or None when there is no such account."""
    with reg.session() as db:
        row = db.execute(
            select(User.role, Owner.slug)
            .outerjoin(Owner, Owner.id == User.owner_id)
            .where(User.username == username)
        ).first()
        return None if row is None else (row[0], row[1])


def has_admin(reg: Registry) -> bool:
    with reg.session() as db:
        return db.scalar(select(User.id).where(User.role == "admin").limit(1)) is not None
