"""Owners, poles, their modules, and groups: the registry's CRUD, scoped by owner."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy import delete, func, select

from controller import policy
from controller.api.auth import (
    DB,
    Admin,
    IdPath,
    Operator,
    Principal,
    Viewer,
    audit,
    forbidden,
    not_found,
)
from controller.api.deps import State
from controller.api.schemas import (
    GroupIn,
    GroupOut,
    GroupPatch,
    ModuleIn,
    ModuleOut,
    ModulePatch,
    OwnerIn,
    OwnerOut,
    PoleIn,
    PoleOut,
    PolePatch,
)
from controller.fleet import push_configs
from controller.registry.models import (
    DimmingProfile,
    Group,
    GroupPole,
    Module,
    Owner,
    Pole,
)

router = APIRouter(prefix="/api", tags=["registry"])

Limit = Annotated[int, Query(ge=1, le=10_000)]
Offset = Annotated[int, Query(ge=0, le=2**53)]


# ---- owners --------------------------------------------------------------------------------
@router.get("/owners", response_model=list[OwnerOut], summary="Organisations")
def list_owners(db: DB, p: Viewer) -> list[Owner]:
    q = select(Owner).order_by(Owner.id)
    if not policy.unscoped(p):
        q = q.where(Owner.id == p.owner_id)
    return list(db.scalars(q))


@router.post("/owners", response_model=OwnerOut, status_code=201, summary="Add an organisation")
def create_owner(db: DB, p: Admin, body: OwnerIn) -> Owner:
    if not policy.manages_owners(p):
        raise forbidden("an owner-scoped account cannot add owners")
    if db.scalar(select(Owner.id).where(Owner.slug == body.slug)) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"slug: {body.slug!r} is taken")
    owner = Owner(**body.model_dump())
    db.add(owner)
    db.flush()
    audit(db, p, "owner.create", "owner", owner.id, **body.model_dump())
    return owner


def _owner_for_write(db: DB, p: Principal, owner_id: int) -> None:
    if db.get(Owner, owner_id) is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"owner_id: no owner {owner_id}")
    if not policy.acts_for(p, owner_id):
        raise forbidden("owner_id: an owner-scoped account can only use its own owner")


def _profile(db: DB, p: Principal, profile_id: int | None) -> DimmingProfile | None:
    """The profile an account assigns; another owner's does not exist for it."""
    if profile_id is None:
        return None
    prof = db.get(DimmingProfile, profile_id)
    if prof is None or not policy.uses_profile(p, prof):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"profile_id: no profile {profile_id}"
        )
    return prof


def _light_refused(
    p: policy.Scoped, prof: DimmingProfile | None, group: Group | None, poles: list[Pole]
) -> None:
    """A profile (a pole's or a group's) may only reach lights its owners steer."""
    bad = [
        x.id
        for x in poles
        if not policy.steers_light(p, x)
        or (prof is not None and not policy.profile_applies(prof, x))
        or (group is not None and not policy.group_applies(group, x))
    ]
    if bad:
        raise forbidden(
            f"profile_id: would set the light of pole(s) {bad[:10]} whose light is not yours"
        )


# ---- poles ---------------------------------------------------------------------------------
def get_pole(db: DB, p: Principal, pole_id: str) -> Pole:
    pole = db.get(Pole, pole_id)
    if pole is None or not policy.sees_pole(p, pole):
        raise not_found("pole", pole_id)  # another owner's pole does not exist for you
    return pole


def pole_out(p: Principal, pole: Pole) -> PoleOut:
    out = PoleOut.model_validate(pole)
    if not policy.owns_pole(p, pole):
        out.modules = [m for m in out.modules if policy.sees_module(p, m)]
        out.nodes = []
    return out


@router.get("/poles", response_model=list[PoleOut], summary="Poles you can see")
def list_poles(
    db: DB,
    p: Viewer,
    district: str | None = None,
    group: Annotated[int | None, Query(ge=1, le=2**53)] = None,
    owner: Annotated[int | None, Query(ge=1, le=2**53)] = None,
    module_type: str | None = None,
    limit: Limit = 1000,
    offset: Offset = 0,
) -> list[PoleOut]:
    q = policy.visible_poles(p)
    if district is not None:
        q = q.where(Pole.district == district)
    if owner is not None:
        q = q.where(Pole.owner_id == owner)
    if group is not None:
        q = q.where(Pole.id.in_(select(GroupPole.pole_id).where(GroupPole.group_id == group)))
    if module_type is not None:
        q = q.where(Pole.id.in_(select(Module.pole_id).where(Module.type == module_type)))
    poles = db.scalars(q.order_by(Pole.id).limit(limit).offset(offset))
    return [pole_out(p, pole) for pole in poles]


@router.post("/poles", response_model=PoleOut, status_code=201, summary="Register a pole")
def create_pole(db: DB, p: Operator, body: PoleIn) -> PoleOut:
    _owner_for_write(db, p, body.owner_id)
    prof = _profile(db, p, body.profile_id)
    if db.get(Pole, body.id) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"id: pole {body.id!r} exists")
    pole = Pole(**body.model_dump())
    db.add(pole)
    db.flush()
    db.refresh(pole)
    if prof is not None:
        _light_refused(p, prof, None, [pole])
    audit(db, p, "pole.create", "pole", pole.id, pole.owner_id, **body.model_dump())
    return pole_out(p, pole)


@router.get("/poles/{pole_id}", response_model=PoleOut, summary="One pole")
def read_pole(db: DB, p: Viewer, pole_id: str) -> PoleOut:
    return pole_out(p, get_pole(db, p, pole_id))


@router.patch("/poles/{pole_id}", response_model=PoleOut, summary="Change a pole")
def update_pole(db: DB, p: Operator, pole_id: str, body: PolePatch) -> PoleOut:
    pole = get_pole(db, p, pole_id)
    if not policy.owns_pole(p, pole):
        raise forbidden("only the pole's owner can change it")
    changes = body.model_dump(exclude_unset=True)
    if "profile_id" in changes:
        _light_refused(p, _profile(db, p, changes["profile_id"]), None, [pole])
    for k, v in changes.items():
        if v is None and k in ("lat", "lon"):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{k}: may not be null")
        setattr(pole, k, v)
    db.flush()
    if {"lat", "lon", "profile_id"} & changes.keys():
        push_configs(db, [pole])
    audit(db, p, "pole.update", "pole", pole.id, pole.owner_id, **changes)
    return pole_out(p, pole)


@router.delete("/poles/{pole_id}", status_code=204, summary="Remove a pole and its modules")
def delete_pole(db: DB, state: State, p: Operator, pole_id: str) -> None:
    pole = get_pole(db, p, pole_id)
    if not policy.removes_pole(p, pole):
        raise forbidden("only the pole's owner can remove it, and not with others' modules on it")
    nodes = [node.node for node in pole.nodes]
    audit(db, p, "pole.delete", "pole", pole.id, pole.owner_id)
    db.delete(pole)
    db.commit()  # then wait, holding no write lock, until the broker refuses its nodes
    for node in nodes:
        state.accounts.remove_node(pole_id, node)


# ---- modules -------------------------------------------------------------------------------
@router.post(
    "/poles/{pole_id}/modules", response_model=ModuleOut, status_code=201, summary="Add a module"
)
def create_module(db: DB, p: Operator, pole_id: str, body: ModuleIn) -> Module:
    pole = get_pole(db, p, pole_id)
    _owner_for_write(db, p, body.owner_id)
    if not policy.adds_module(p, pole, body.owner_id):
        raise forbidden("the pole's owner decides which modules it carries")
    module = Module(pole_id=pole.id, **body.model_dump())
    db.add(module)
    db.flush()
    audit(
        db,
        p,
        "module.create",
        "module",
        module.id,
        module.owner_id,
        pole=pole.id,
        **body.model_dump(),
    )
    return module


def get_module(db: DB, p: Principal, module_id: IdPath) -> Module:
    module = db.get(Module, module_id)
    if module is None or not policy.sees_module(p, module):
        raise not_found("module", module_id)
    return module


@router.get("/modules", response_model=list[ModuleOut], summary="Modules you can see")
def list_modules(
    db: DB, p: Viewer, type: str | None = None, limit: Limit = 1000, offset: Offset = 0
) -> list[Module]:
    q = select(Module).where(policy.visible_modules(p))
    if type is not None:
        q = q.where(Module.type == type)
    return list(db.scalars(q.order_by(Module.id).limit(limit).offset(offset)))


@router.get("/modules/{module_id}", response_model=ModuleOut, summary="One module")
def read_module(db: DB, p: Viewer, module_id: IdPath) -> Module:
    return get_module(db, p, module_id)


@router.patch("/modules/{module_id}", response_model=ModuleOut, summary="Change a module")
def update_module(db: DB, p: Operator, module_id: IdPath, body: ModulePatch) -> Module:
    module = get_module(db, p, module_id)
    changes = body.model_dump(exclude_unset=True)
    if not policy.changes_module(p, module, changes):
        raise forbidden("node and src tie a module to the pole: only the pole's owner sets them")
    for k, v in changes.items():
        if v is None and k in ("purpose", "openness", "personal_data", "attributes"):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{k}: may not be null")
        setattr(module, k, v)
    audit(db, p, "module.update", "module", module.id, module.owner_id, **changes)
    return module


@router.delete("/modules/{module_id}", status_code=204, summary="Remove a module")
def delete_module(db: DB, p: Operator, module_id: IdPath) -> None:
    module = get_module(db, p, module_id)
    audit(db, p, "module.delete", "module", module.id, module.owner_id, pole=module.pole_id)
    db.delete(module)


# ---- groups --------------------------------------------------------------------------------
def group_out(db: DB, g: Group) -> GroupOut:
    out = GroupOut.model_validate(g)
    out.poles = list(
        db.scalars(select(GroupPole.pole_id).where(GroupPole.group_id == g.id).order_by("pole_id"))
    )
    return out


def get_group(db: DB, p: Principal, group_id: IdPath) -> Group:
    g = db.get(Group, group_id)
    if g is None or not policy.sees_group(p, g):
        raise not_found("group", group_id)
    return g


def _members(db: DB, p: Principal, poles: list[str]) -> list[Pole]:
    unique = sorted(set(poles))
    found = list(db.scalars(policy.visible_poles(p).where(Pole.id.in_(unique))))
    missing = sorted(set(unique) - {x.id for x in found})
    if missing:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"poles: unknown pole(s) {missing[:10]}"
        )
    return found


def _set_members(db: DB, g: Group, poles: list[Pole]) -> None:
    db.execute(delete(GroupPole).where(GroupPole.group_id == g.id))
    db.add_all(GroupPole(group_id=g.id, pole_id=x.id) for x in poles)


def _current_members(db: DB, g: Group) -> list[Pole]:
    return list(
        db.scalars(
            select(Pole)
            .join(GroupPole, GroupPole.pole_id == Pole.id)
            .where(GroupPole.group_id == g.id)
        )
    )


@router.get("/groups", response_model=list[GroupOut], summary="Groups of poles")
def list_groups(db: DB, p: Viewer) -> list[GroupOut]:
    q = select(Group).where(policy.visible_groups(p)).order_by(Group.id)
    return [group_out(db, g) for g in db.scalars(q)]


@router.post("/groups", response_model=GroupOut, status_code=201, summary="Make a group")
def create_group(db: DB, p: Operator, body: GroupIn) -> GroupOut:
    owner_id = body.owner_id if body.owner_id is not None else p.owner_id
    if owner_id is not None:
        _owner_for_write(db, p, owner_id)
    prof = _profile(db, p, body.profile_id)
    members = _members(db, p, body.poles)
    if db.scalar(select(Group.id).where(Group.name == body.name)) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"name: group {body.name!r} exists")
    g = Group(
        name=body.name, description=body.description, owner_id=owner_id, profile_id=body.profile_id
    )
    if prof is not None:
        _light_refused(p, prof, g, members)
    db.add(g)
    db.flush()
    _set_members(db, g, members)
    db.flush()
    if g.profile_id is not None:
        push_configs(db, db.scalars(select(Pole).where(Pole.id.in_(body.poles))))
    audit(db, p, "group.create", "group", g.id, owner_id, **body.model_dump())
    return group_out(db, g)


@router.get("/groups/{group_id}", response_model=GroupOut, summary="One group")
def read_group(db: DB, p: Viewer, group_id: IdPath) -> GroupOut:
    return group_out(db, get_group(db, p, group_id))


@router.patch("/groups/{group_id}", response_model=GroupOut, summary="Change a group")
def update_group(db: DB, p: Operator, group_id: IdPath, body: GroupPatch) -> GroupOut:
    g = get_group(db, p, group_id)
    changes = body.model_dump(exclude_unset=True)
    before = set(db.scalars(select(GroupPole.pole_id).where(GroupPole.group_id == g.id)))
    if "description" in changes and changes["description"] is not None:
        g.description = changes["description"]
    members = (
        _members(db, p, changes["poles"])
        if changes.get("poles") is not None
        else _current_members(db, g)
    )
    prof = _profile(db, p, changes.get("profile_id", g.profile_id))
    if prof is not None:
        _light_refused(p, prof, g, members)
    if "profile_id" in changes:
        g.profile_id = changes["profile_id"]
    if changes.get("poles") is not None:
        _set_members(db, g, members)
    db.flush()
    after = set(db.scalars(select(GroupPole.pole_id).where(GroupPole.group_id == g.id)))
    push_configs(db, db.scalars(select(Pole).where(Pole.id.in_(before | after))))
    audit(db, p, "group.update", "group", g.id, g.owner_id, **changes)
    return group_out(db, g)


@router.delete("/groups/{group_id}", status_code=204, summary="Remove a group")
def delete_group(db: DB, p: Operator, group_id: IdPath) -> None:
    g = get_group(db, p, group_id)
    members = list(db.scalars(select(GroupPole.pole_id).where(GroupPole.group_id == g.id)))
    audit(db, p, "group.delete", "group", g.id, g.owner_id)
    db.delete(g)
    db.flush()
    push_configs(db, db.scalars(select(Pole).where(Pole.id.in_(members))))


@router.get("/stats", summary="Counts for the dashboard's header")
def counts(db: DB, p: Viewer) -> dict[str, int]:
    poles = policy.visible_poles(p).subquery()
    return {
        "poles": db.scalar(select(func.count()).select_from(poles)) or 0,
        "groups": len(list_groups(db, p)),
    }
