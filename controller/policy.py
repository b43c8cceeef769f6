"""Who may see and who may steer what: the owner-scope policy, one function per decision.

Every operator route asks these functions; no route decides scope on its own. Roles (admin,
operator, technician, viewer) say *what kind* of action an account may take and are checked by
``controller.api.auth.require``; this module says *on whose things*.

The rules, after CENT-R's pole as passive infrastructure carrying modules of several owners:

- An account without an owner is the municipality's (the infrastructure operator): it sees and
  steers everything its role allows.
- An owner-scoped account sees a pole when its owner owns the pole or a module on it; it sees
  only its own modules, their data and alarms; nodes, their commands, acks and state belong to
  the pole's owner.
- Who may change a pole's light is the owner of its lighting module (with none registered, the
  pole's owner) and the municipality. Everything that reaches a light follows: overrides (create
  and revert), a pole's profile, group profiles, energy.
- Profiles and programs are a library: the municipality's shared entries (no owner) are
  readable by all and changed only by unscoped accounts; an owner may keep its own entries
  beside them. A profile or group only ever lights a pole whose light its owner steers; the
  config compiler checks that too (``profile_applies``), so a stale membership cannot dim a pole.
- Firmware and campaigns are run by the municipality; an owner sees the campaigns and packages
  that reach its nodes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Select, and_, or_, select, true

from controller.registry.models import (
    Alarm,
    AuditEntry,
    Campaign,
    CampaignNode,
    DimmingProfile,
    FirmwarePackage,
    Group,
    Module,
    Node,
    Pole,
    Program,
    User,
)


class Scoped(Protocol):
    @property
    def owner_id(self) -> int | None: ...


@dataclass(frozen=True)
class OwnerOf:
    """An owner acting through something it owns (a group, a profile), not through an account."""

    owner_id: int | None


# module fields that tie a module to a pole's hardware and streams: only the pole's owner sets them
WIRING = frozenset({"type", "node", "src", "owner_id"})


def unscoped(p: Scoped) -> bool:
    return p.owner_id is None


# ---- poles and modules ---------------------------------------------------------------------
def visible_poles(p: Scoped) -> Select[Pole]:
    q = select(Pole)
    if p.owner_id is not None:
        q = q.where(
            or_(
                Pole.owner_id == p.owner_id,
                Pole.id.in_(select(Module.pole_id).where(Module.owner_id == p.owner_id)),
            )
        )
    return q


def sees_pole(p: Scoped, pole: Pole) -> bool:
    if p.owner_id is None or pole.owner_id == p.owner_id:
        return True
    return any(m.owner_id == p.owner_id for m in pole.modules)


def owns_pole(p: Scoped, pole: Pole) -> bool:
    """Changes to the pole itself (name, place), its nodes and which modules it carries."""
    return p.owner_id is None or pole.owner_id == p.owner_id


def removes_pole(p: Scoped, pole: Pole) -> bool:
    """Removing a pole removes its modules: only when none of them is another owner's."""
    if p.owner_id is None:
        return True
    return pole.owner_id == p.owner_id and all(m.owner_id == p.owner_id for m in pole.modules)


def sees_module(p: Scoped, module: Scoped) -> bool:
    """A module (or its API form) and its data are its owner's."""
    return p.owner_id is None or module.owner_id == p.owner_id


def visible_modules(p: Scoped) -> ColumnElement[bool]:
    return true() if p.owner_id is None else Module.owner_id == p.owner_id


def changes_module(p: Scoped, module: Module, fields: Iterable[str]) -> bool:
    """A module's owner changes its register fields; what wires it to the pole's hardware
    (type, node, src) is the pole owner's, or a module could claim another owner's stream."""
    if not sees_module(p, module):
        return False
    return not (WIRING & set(fields)) or owns_pole(p, module.pole)


def adds_module(p: Scoped, pole: Pole, owner_id: int) -> bool:
    """A pole's owner decides what goes on it; a scoped account adds only its own modules."""
    return p.owner_id is None or (pole.owner_id == p.owner_id and owner_id == p.owner_id)


# ---- light ---------------------------------------------------------------------------------
def steers_light(p: Scoped, pole: Pole) -> bool:
    if p.owner_id is None:
        return True
    lighting = [m for m in pole.modules if m.type == "lighting"]
    if lighting:
        return all(m.owner_id == p.owner_id for m in lighting)
    return pole.owner_id == p.owner_id


def sees_energy(p: Scoped, pole: Pole) -> bool:
    """Energy is the lamp's: shown to whoever steers that lamp."""
    return steers_light(p, pole)


def uses_profile(p: Scoped, profile: DimmingProfile) -> bool:
    """A profile may be assigned by an account that sees it (shared or its owner's own)."""
    return sees_library_entry(p, profile)


def profile_applies(profile: DimmingProfile, pole: Pole) -> bool:
    """A profile lights a pole only when the profile's owner steers that pole's light."""
    return steers_light(OwnerOf(profile.owner_id), pole)


def group_applies(group: Group, pole: Pole) -> bool:
    """A group's profile lights a member only when the group's owner steers that pole's light."""
    return steers_light(OwnerOf(group.owner_id), pole)


# ---- nodes ---------------------------------------------------------------------------------
def sees_node(p: Scoped, node: Node) -> bool:
    """A node is part of its pole: its owner's (with its state, configs, commands and acks)."""
    return owns_pole(p, node.pole)


def node_poles(p: Scoped) -> Select[str] | None:
    """Poles whose nodes the account sees; None: all."""
    if p.owner_id is None:
        return None
    return select(Pole.id).where(Pole.owner_id == p.owner_id)


def commands_node(p: Scoped, node: Node, cmd: str) -> bool:
    """Reboot and self-test are the node owner's; a revert changes the light."""
    if not sees_node(p, node):
        return False
    return cmd != "revert" or steers_light(p, node.pole)


def sees_fleet_ingest(p: Scoped) -> bool:
    """Ingest counters and refused messages (which cannot be trusted to say whose they are)."""
    return p.owner_id is None


# ---- groups --------------------------------------------------------------------------------
def sees_group(p: Scoped, group: Group) -> bool:
    return p.owner_id is None or group.owner_id == p.owner_id


def visible_groups(p: Scoped) -> ColumnElement[bool]:
    return true() if p.owner_id is None else Group.owner_id == p.owner_id


def acts_for(p: Scoped, owner_id: int | None) -> bool:
    """Whose groups, profiles and programs an account may make: its own owner's, or any
    (unscoped; None is the municipality's shared entry)."""
    return p.owner_id is None or owner_id == p.owner_id


# ---- profiles and programs (a library: shared entries and an owner's own) -------------------
def sees_library_entry(p: Scoped, entry: DimmingProfile | Program) -> bool:
    return p.owner_id is None or entry.owner_id is None or entry.owner_id == p.owner_id


def visible_library(p: Scoped, model: type[DimmingProfile] | type[Program]) -> ColumnElement[bool]:
    if p.owner_id is None:
        return true()
    return or_(model.owner_id.is_(None), model.owner_id == p.owner_id)


def changes_library_entry(p: Scoped, entry: DimmingProfile | Program) -> bool:
    """Shared entries reach every pole: only the municipality changes them."""
    return p.owner_id is None or entry.owner_id == p.owner_id


def program_fits(profile_owner: int | None, program: Program) -> bool:
    """A profile may name shared programs and its own owner's, so that a change to a program
    never reaches a pole through another owner's profile."""
    return program.owner_id is None or program.owner_id == profile_owner


# ---- overrides -----------------------------------------------------------------------------
def sees_override(p: Scoped, created_by_self: bool, reached: Iterable[Pole]) -> bool:
    return p.owner_id is None or created_by_self or any(steers_light(p, x) for x in reached)


def reverts_override(p: Scoped, reached: Iterable[Pole]) -> bool:
    """A revert returns every reached light to its program: only when all of them are yours."""
    return p.owner_id is None or all(steers_light(p, x) for x in reached)


# ---- firmware and campaigns ----------------------------------------------------------------
def manages_firmware(p: Scoped) -> bool:
    return p.owner_id is None


def campaign_nodes_filter(p: Scoped) -> ColumnElement[bool]:
    """The campaign rows an account sees: those of nodes on its poles."""
    if p.owner_id is None:
        return true()
    return CampaignNode.node_id.in_(
        select(Node.id).join(Pole, Pole.id == Node.pole_id).where(Pole.owner_id == p.owner_id)
    )


def visible_campaigns(p: Scoped) -> ColumnElement[bool]:
    if p.owner_id is None:
        return true()
    return Campaign.id.in_(select(CampaignNode.campaign_id).where(campaign_nodes_filter(p)))


def visible_packages(p: Scoped) -> ColumnElement[bool]:
    """Packages that run on, or are rolled out to, the account's nodes."""
    if p.owner_id is None:
        return true()
    own_nodes = select(Node.firmware_version).join(Pole, Pole.id == Node.pole_id)
    return or_(
        FirmwarePackage.version.in_(own_nodes.where(Pole.owner_id == p.owner_id)),
        FirmwarePackage.id.in_(select(Campaign.package_id).where(visible_campaigns(p))),
    )


# ---- alarms --------------------------------------------------------------------------------
def visible_alarms(p: Scoped) -> ColumnElement[bool]:
    """A module's alarm is its owner's; an alarm of no module (a node, the pole) the pole's."""
    if p.owner_id is None:
        return true()
    return or_(
        Alarm.module_id.in_(select(Module.id).where(Module.owner_id == p.owner_id)),
        and_(
            Alarm.module_id.is_(None),
            Alarm.pole_id.in_(select(Pole.id).where(Pole.owner_id == p.owner_id)),
        ),
    )


def sees_alarm(
    p: Scoped, alarm: dict[str, Any], own_poles: frozenset[str], own_modules: frozenset[int]
) -> bool:
    """The same rule as ``visible_alarms`` for an alarm already read (the event stream)."""
    if p.owner_id is None:
        return True
    if alarm["module_id"] is not None:
        return alarm["module_id"] in own_modules
    return alarm["pole_id"] in own_poles


# ---- accounts and owners -------------------------------------------------------------------
def manages_owners(p: Scoped) -> bool:
    return p.owner_id is None


def manages_account(p: Scoped, owner_id: int | None) -> bool:
    return p.owner_id is None or owner_id == p.owner_id


def visible_accounts(p: Scoped) -> ColumnElement[bool]:
    return true() if p.owner_id is None else User.owner_id == p.owner_id


def visible_audit(p: Scoped, username: str) -> ColumnElement[bool]:
    """Entries about the owner's things, and what the account did itself."""
    if p.owner_id is None:
        return true()
    return or_(AuditEntry.owner_id == p.owner_id, AuditEntry.actor == username)


def visible_records(p: Scoped) -> ColumnElement[bool]:
    """Commissioning records (audit entries of the pole's owner)."""
    return true() if p.owner_id is None else AuditEntry.owner_id == p.owner_id
