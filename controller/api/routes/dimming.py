"""Dimming programs and profiles (calendar + levels + presence), and overrides.

A change to a program or profile recompiles the config of every node it reaches and pushes it
(retained, new version); each node's answer shows in ``/api/nodes/{id}/configs``. A profile that
would not validate on the node is refused here with the node's own reason, before anything goes
out.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, TypeVar

from fastapi import APIRouter, HTTPException, status
from sqlalchemy import or_, select

from controller import policy
from controller.api.auth import (
    DB,
    IdPath,
    Operator,
    Principal,
    Viewer,
    audit,
    forbidden,
    not_found,
)
from controller.api.schemas import (
    CommandOut,
    OverrideIn,
    OverrideOut,
    ProfileIn,
    ProfileOut,
    ProgramIn,
    ProgramOut,
)
from controller.fleet import issue_command, new_id, push_configs
from controller.registry.models import (
    Command,
    DimmingProfile,
    Group,
    GroupPole,
    Node,
    Override,
    Owner,
    Pole,
    Program,
)
from controller.registry.scope import light_nodes, poles_in_target
from protocols import codec
from protocols.errors import ProtocolError

router = APIRouter(prefix="/api", tags=["dimming"])


def _poles_using_profile(db: DB, profile_id: IdPath) -> list[Pole]:
    return list(
        db.scalars(
            select(Pole).where(
                or_(
                    Pole.profile_id == profile_id,
                    Pole.id.in_(
                        select(GroupPole.pole_id)
                        .join(Group, Group.id == GroupPole.group_id)
                        .where(Group.profile_id == profile_id)
                    ),
                )
            )
        )
    )


def _library_owner(db: DB, p: Principal, owner_id: int | None) -> int | None:
    """Whose entry a new profile or program is: the body's owner, else the account's."""
    owner = owner_id if owner_id is not None else p.owner_id
    if owner is not None and db.get(Owner, owner) is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"owner_id: no owner {owner}")
    if not policy.acts_for(p, owner):
        raise forbidden("owner_id: an owner-scoped account can only use its own owner")
    return owner


Entry = TypeVar("Entry", Program, DimmingProfile)


def _library_entry(
    db: DB, p: Principal, model: type[Entry], ident: int, body_owner: int | None
) -> Entry:
    what = "program" if model is Program else "profile"
    entry = db.get(model, ident)
    if entry is None or not policy.sees_library_entry(p, entry):
        raise not_found(what, ident)
    if not policy.changes_library_entry(p, entry):
        raise forbidden(f"a shared {what} is changed by the municipality's (unscoped) accounts")
    if body_owner is not None and body_owner != entry.owner_id:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "owner_id: cannot be changed")
    return entry


def _validate(db: DB, body: ProfileIn, owner: int | None) -> None:
    """Compile the profile as a node would receive it and let the codec judge it."""
    stored = body.stored()
    names = {body.default_program} | {r["program"] for r in stored["calendar"]}
    programs = {
        p.name: {"steps": p.steps}
        for p in db.scalars(select(Program))
        if policy.program_fits(owner, p)
    }
    missing = sorted(names - programs.keys())
    if missing:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"default_program/calendar: no program {missing}"
        )
    dim: dict[str, Any] = {
        k: stored[k]
        for k in (
            "default_program",
            "calendar",
            "min_level",
            "max_level",
            "safe_level",
            "presence",
            "noise_trigger",
        )
        if k in stored
    }
    dim["programs"] = {n: programs[n] for n in names}
    try:
        codec.check(
            "config",
            {"version": 1, "report_period_s": body.report_period_s, "tz": body.tz, "dimming": dim},
        )
    except ProtocolError as e:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(e)) from None


def _name_free(db: DB, model: type[Program] | type[DimmingProfile], kind: str, name: str) -> None:
    """Programs and profiles are named uniquely: a taken name is a 409."""
    if db.scalar(select(model.id).where(model.name == name)) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"name: {kind} {name!r} exists")


def _steps(body: ProgramIn) -> list[dict[str, Any]]:
    """A program's steps as stored and sent to nodes: defaults left out, the level always in."""
    return [s.model_dump(exclude_defaults=True) | {"level": s.level} for s in body.steps]


# ---- programs ------------------------------------------------------------------------------
@router.get("/programs", response_model=list[ProgramOut], summary="Control programs")
def list_programs(db: DB, p: Viewer) -> list[Program]:
    q = select(Program).where(policy.visible_library(p, Program))
    return list(db.scalars(q.order_by(Program.id)))


@router.post("/programs", response_model=ProgramOut, status_code=201, summary="Add a program")
def create_program(db: DB, p: Operator, body: ProgramIn) -> Program:
    owner = _library_owner(db, p, body.owner_id)
    _name_free(db, Program, "program", body.name)
    prog = Program(name=body.name, steps=_steps(body), owner_id=owner)
    db.add(prog)
    db.flush()
    audit(db, p, "program.create", "program", prog.id, **body.model_dump())
    return prog


@router.put("/programs/{program_id}", response_model=ProgramOut, summary="Replace a program")
def replace_program(db: DB, p: Operator, program_id: IdPath, body: ProgramIn) -> Program:
    prog = _library_entry(db, p, Program, program_id, body.owner_id)
    if body.name != prog.name:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "name: cannot be changed")
    prog.steps = _steps(body)
    db.flush()
    profiles = db.scalars(select(DimmingProfile)).all()
    n = 0
    for prof in profiles:
        if prog.name == prof.default_program or any(
            r["program"] == prog.name for r in prof.calendar
        ):
            n += push_configs(db, _poles_using_profile(db, prof.id))
    audit(db, p, "program.update", "program", prog.id, pushed=n, **body.model_dump())
    return prog


# ---- profiles ------------------------------------------------------------------------------
@router.get("/profiles", response_model=list[ProfileOut], summary="Dimming profiles")
def list_profiles(db: DB, p: Viewer) -> list[DimmingProfile]:
    q = select(DimmingProfile).where(policy.visible_library(p, DimmingProfile))
    return list(db.scalars(q.order_by(DimmingProfile.id)))


@router.post("/profiles", response_model=ProfileOut, status_code=201, summary="Add a profile")
def create_profile(db: DB, p: Operator, body: ProfileIn) -> DimmingProfile:
    owner = _library_owner(db, p, body.owner_id)
    _name_free(db, DimmingProfile, "profile", body.name)
    _validate(db, body, owner)
    prof = DimmingProfile(**body.stored() | {"owner_id": owner})
    db.add(prof)
    db.flush()
    audit(db, p, "profile.create", "profile", prof.id, **body.stored())
    return prof


@router.put(
    "/profiles/{profile_id}",
    response_model=ProfileOut,
    summary="Replace a profile; the nodes using it get a new config",
)
def replace_profile(db: DB, p: Operator, profile_id: IdPath, body: ProfileIn) -> DimmingProfile:
    prof = _library_entry(db, p, DimmingProfile, profile_id, body.owner_id)
    _validate(db, body, prof.owner_id)
    stored = body.stored()
    stored.pop("owner_id", None)
    for col in ("safe_level", "presence", "noise_trigger"):
        stored.setdefault(col, None)
    for k, v in stored.items():
        setattr(prof, k, v)
    db.flush()
    n = push_configs(db, _poles_using_profile(db, prof.id))
    audit(db, p, "profile.update", "profile", prof.id, pushed=n, **body.stored())
    return prof


# ---- overrides -----------------------------------------------------------------------------
def _override_out(db: DB, ov: Override, now: float) -> OverrideOut:
    out = OverrideOut.model_validate(ov)
    out.active = (
        ov.reverted_at is None and ov.start <= now and (ov.expiry is None or now < ov.expiry)
    )
    out.nodes = len(
        list(
            db.scalars(
                select(Command.id).where(Command.override_id == ov.id, Command.kind == "override")
            )
        )
    )
    return out


@router.post(
    "/overrides",
    response_model=OverrideOut,
    status_code=201,
    summary="Override the light of a pole, a group or an area (event mode: full light)",
)
def create_override(db: DB, p: Operator, body: OverrideIn) -> OverrideOut:
    now = int(time.time())
    target: dict[str, Any]
    if body.group is not None:
        g = db.get(Group, body.group)
        if g is None or not policy.sees_group(p, g):
            raise not_found("group", body.group)
        kind, target = "group", {"group": body.group}
    elif body.pole is not None:
        kind, target = "pole", {"pole": body.pole}
    else:
        assert body.area is not None
        kind, target = "area", body.area.model_dump(exclude_none=True)
        target = {k: [list(x) for x in v] if k == "polygon" else list(v) for k, v in target.items()}
    poles = poles_in_target(db, kind, target)
    if kind == "pole" and not poles:
        raise not_found("pole", body.pole)
    refused = [pole.id for pole in poles if not policy.steers_light(p, pole)]
    if refused and kind == "pole":
        raise not_found("pole", body.pole)
    poles = [pole for pole in poles if pole.id not in refused]
    start = body.start or now
    expiry = body.expiry or (start + body.duration_s if body.duration_s else None)
    if expiry is not None and expiry <= max(start, now):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "expiry: must be after start and in the future"
        )
    level = 1.0 if body.mode == "event" else body.level
    ov = Override(
        id=new_id("ov"),
        target_kind=kind,
        target=target,
        level=level,
        start=start,
        expiry=expiry,
        mode=body.mode,
        reason=body.reason,
        created_by=p.username,
    )
    db.add(ov)
    db.flush()
    fields: dict[str, Any] = {"level": level, "start": start}
    if expiry is not None:
        fields["expiry"] = expiry
    for pole in poles:
        for node in light_nodes(pole):
            issue_command(db, node, "override", p.username, fields, override_id=ov.id)
    db.flush()
    audit(
        db,
        p,
        "override.create",
        "override",
        ov.id,
        kind=kind,
        target=target,
        level=level,
        start=start,
        expiry=expiry,
        mode=body.mode,
        poles=[x.id for x in poles],
        skipped_not_yours=len(refused),  # a count: their ids are not the account's to know
    )
    return _override_out(db, ov, now)


@router.get("/overrides", response_model=list[OverrideOut], summary="Overrides, newest first")
def list_overrides(db: DB, p: Viewer, active: bool | None = None) -> list[OverrideOut]:
    now = time.time()
    rows = db.scalars(select(Override).order_by(Override.created_at.desc()).limit(500))
    out = [_override_out(db, ov, now) for ov in rows if _visible(db, p, ov)]
    return [o for o in out if active is None or o.active == active]


def _reached(db: DB, ov: Override) -> Iterator[Pole]:
    """The poles an override sent commands to (the target's poles may have changed since);
    lazily, so an unscoped account's listing does not query them."""
    yield from db.scalars(
        select(Pole)
        .join(Node, Node.pole_id == Pole.id)
        .join(Command, Command.node_id == Node.id)
        .where(Command.override_id == ov.id)
        .distinct()
    )


def _visible(db: DB, p: Principal, ov: Override) -> bool:
    return policy.sees_override(p, ov.created_by == p.username, _reached(db, ov))


@router.get("/overrides/{override_id}", response_model=OverrideOut, summary="One override")
def read_override(db: DB, p: Viewer, override_id: str) -> OverrideOut:
    ov = db.get(Override, override_id)
    if ov is None or not _visible(db, p, ov):
        raise not_found("override", override_id)
    return _override_out(db, ov, time.time())


@router.get(
    "/overrides/{override_id}/commands",
    response_model=list[CommandOut],
    summary="The per-node commands of an override, with the nodes' answers",
)
def override_commands(db: DB, p: Viewer, override_id: str) -> list[Command]:
    read_override(db, p, override_id)
    rows = db.execute(
        select(Command, Pole)
        .join(Node, Node.id == Command.node_id)
        .join(Pole, Pole.id == Node.pole_id)
        .where(Command.override_id == override_id)
        .order_by(Command.node_id)
    ).all()
    return [c for c, pole in rows if policy.steers_light(p, pole)]


@router.post(
    "/overrides/{override_id}/revert",
    response_model=OverrideOut,
    summary="End an override now: its nodes return to their program",
)
def revert_override(db: DB, p: Operator, override_id: str) -> OverrideOut:
    ov = db.get(Override, override_id)
    if ov is None or not _visible(db, p, ov):
        raise not_found("override", override_id)
    if not policy.reverts_override(p, _reached(db, ov)):
        raise forbidden("the override reaches lights that are not yours; ask their owner")
    if ov.reverted_at is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, "already reverted")
    ov.reverted_at = time.time()
    nodes = {c.node_id for c in db.scalars(select(Command).where(Command.override_id == ov.id))}
    for node_id in sorted(nodes):
        node = db.get(Node, node_id)
        if node is not None:
            issue_command(db, node, "revert", p.username, override_id=ov.id)
    audit(db, p, "override.revert", "override", ov.id, nodes=len(nodes))
    return _override_out(db, ov, time.time())
