"""What the registry holds: owners, poles and their modules, nodes, groups, dimming, overrides,
commands, firmware, alarms, accounts and the audit log.

Ids that appear in MQTT topics (pole ids, node ids) are strings checked by the protocol's
``check_id``; everything else has an integer key. Times are UTC epoch seconds (floats for
"when it happened", ints where the protocol uses ints), the same as on the wire, so nothing is
lost converting between time zones. Modules carry the sensor-register fields (owner, purpose,
openness, personal data), after Kadaster's SensRNet model.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from controller.registry.db import Base

# The values the API accepts for these columns (its schemas use these types); the columns of
# states below name theirs beside them.
ModuleType = Literal[
    "lighting", "air", "noise", "motion", "ev_charger", "camera", "small_cell", "other"
]
Openness = Literal["open", "restricted", "closed"]
Role = Literal["admin", "operator", "technician", "viewer"]


def now() -> float:
    return time.time()


class Owner(Base):
    """An organisation: the municipality as infrastructure operator, or a market party."""

    __tablename__ = "owners"
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32), default="municipality")
    contact: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[float] = mapped_column(Float, default=now)


class Pole(Base):
    __tablename__ = "poles"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    address: Mapped[str | None] = mapped_column(String(300))
    district: Mapped[str | None] = mapped_column(String(100), index=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id", ondelete="RESTRICT"))
    profile_id: Mapped[int | None] = mapped_column(
        ForeignKey("dimming_profiles.id", ondelete="SET NULL")
    )
    created_at: Mapped[float] = mapped_column(Float, default=now)
    modules: Mapped[list[Module]] = relationship(
        back_populates="pole", cascade="all, delete-orphan", order_by="Module.id"
    )
    nodes: Mapped[list[Node]] = relationship(
        back_populates="pole", cascade="all, delete-orphan", order_by="Node.id"
    )
    __table_args__ = (Index("poles_lat_lon", "lat", "lon"),)


class Module(Base):
    """One module on a pole (CENT-R's "power strip" socket), with its sensor-register fields."""

    __tablename__ = "modules"
    id: Mapped[int] = mapped_column(primary_key=True)
    pole_id: Mapped[str] = mapped_column(ForeignKey("poles.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(32))
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id", ondelete="RESTRICT"))
    purpose: Mapped[str] = mapped_column(String(500), default="")
    openness: Mapped[str] = mapped_column(String(16), default="open")
    personal_data: Mapped[bool] = mapped_column(Boolean, default=False)
    # which node serves it, and under which ``src`` its readings arrive ("air", "lamp", ...)
    node: Mapped[str | None] = mapped_column(String(64))
    src: Mapped[str | None] = mapped_column(String(64))
    rated_power_w: Mapped[float | None] = mapped_column(Float)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    pole: Mapped[Pole] = relationship(back_populates="modules")


class Node(Base):
    """An ESP32 on a pole: its hardware, firmware, MQTT credentials (hash only) and update key."""

    __tablename__ = "nodes"
    id: Mapped[int] = mapped_column(primary_key=True)
    pole_id: Mapped[str] = mapped_column(ForeignKey("poles.id", ondelete="CASCADE"))
    node: Mapped[str] = mapped_column(String(64))
    hardware_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    board: Mapped[str] = mapped_column(String(64), default="streetpole-esp32-v1")
    firmware_version: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="unknown")
    level: Mapped[float | None] = mapped_column(Float)
    last_seen: Mapped[float | None] = mapped_column(Float)
    mqtt_username: Mapped[str] = mapped_column(String(140), unique=True)
    mqtt_password_hash: Mapped[str | None] = mapped_column(String(300))
    update_key: Mapped[str] = mapped_column(String(64))
    provisioned_at: Mapped[float | None] = mapped_column(Float)
    config_version: Mapped[int] = mapped_column(Integer, default=0)
    pole: Mapped[Pole] = relationship(back_populates="nodes")
    __table_args__ = (UniqueConstraint("pole_id", "node"),)


class Group(Base):
    __tablename__ = "groups"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("owners.id", ondelete="RESTRICT"))
    profile_id: Mapped[int | None] = mapped_column(
        ForeignKey("dimming_profiles.id", ondelete="SET NULL")
    )
    created_at: Mapped[float] = mapped_column(Float, default=now)


class GroupPole(Base):
    __tablename__ = "group_poles"
    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    pole_id: Mapped[str] = mapped_column(
        ForeignKey("poles.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Program(Base):
    """A TALQ-style control program: steps at local times or sunrise/sunset with offsets."""

    __tablename__ = "programs"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    # None: the municipality's shared library; else an owner's own (controller.policy)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("owners.id", ondelete="RESTRICT"))
    created_at: Mapped[float] = mapped_column(Float, default=now)


class DimmingProfile(Base):
    """Calendar (which program runs on which day) plus the levels and presence behaviour; what a
    pole or group is assigned, compiled into each node's retained config."""

    __tablename__ = "dimming_profiles"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # None: the municipality's shared library; else an owner's own (controller.policy)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("owners.id", ondelete="RESTRICT"))
    default_program: Mapped[str] = mapped_column(String(64))
    calendar: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    min_level: Mapped[float] = mapped_column(Float, default=0.0)
    max_level: Mapped[float] = mapped_column(Float, default=1.0)
    safe_level: Mapped[float | None] = mapped_column(Float)
    presence: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    noise_trigger: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    report_period_s: Mapped[int] = mapped_column(Integer, default=60)
    tz: Mapped[str] = mapped_column(String(64), default="CET-1CEST,M3.5.0,M10.5.0/3")
    neighbour_radius_m: Mapped[float] = mapped_column(Float, default=60.0)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class NodeConfig(Base):
    """Every config version pushed to a node, and what the node said about it."""

    __tablename__ = "node_configs"
    id: Mapped[int] = mapped_column(primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|applied|rejected
    reason: Mapped[str | None] = mapped_column(Text)
    pushed_at: Mapped[float] = mapped_column(Float, default=now)
    acked_at: Mapped[float | None] = mapped_column(Float)
    __table_args__ = (UniqueConstraint("node_id", "version"),)


class Override(Base):
    """An override of a pole, a group or an area, fanned out as one command per node."""

    __tablename__ = "overrides"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    target_kind: Mapped[str] = mapped_column(String(16))  # pole | group | area
    target: Mapped[dict[str, Any]] = mapped_column(JSON)
    level: Mapped[float] = mapped_column(Float)
    start: Mapped[int] = mapped_column(Integer)
    expiry: Mapped[int | None] = mapped_column(Integer)
    mode: Mapped[str] = mapped_column(String(16), default="normal")  # normal | event
    reason: Mapped[str] = mapped_column(String(300), default="")
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[float] = mapped_column(Float, default=now)
    reverted_at: Mapped[float | None] = mapped_column(Float)


class Command(Base):
    """One command to one node, with the node's acknowledgement."""

    __tablename__ = "commands"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    # pending | accepted | applied | rejected | failed | expired
    status: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    override_id: Mapped[str | None] = mapped_column(
        ForeignKey("overrides.id", ondelete="SET NULL"), index=True
    )
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="SET NULL"), index=True
    )
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[float] = mapped_column(Float, default=now)
    acked_at: Mapped[float | None] = mapped_column(Float)


class FirmwarePackage(Base):
    __tablename__ = "firmware_packages"
    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(32), unique=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(String(500))
    # "image": a whole firmware image for A/B app slots (production nodes, spnode.imgupdate);
    # "tree": an SPA1 archive of the .mpy tree (development nodes, spnode.update)
    kind: Mapped[str] = mapped_column(String(8), default="tree", server_default="tree")
    notes: Mapped[str] = mapped_column(Text, default="")
    uploaded_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[float] = mapped_column(Float, default=now)


class Campaign(Base):
    """A paced rollout of a package to a group, halted automatically on too many failures."""

    __tablename__ = "campaigns"
    id: Mapped[int] = mapped_column(primary_key=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("firmware_packages.id"))
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id"))
    nodes_per_minute: Mapped[float] = mapped_column(Float, default=10.0)
    failure_threshold: Mapped[float] = mapped_column(Float, default=0.2)
    min_finished: Mapped[int] = mapped_column(Integer, default=3)
    timeout_s: Mapped[int] = mapped_column(Integer, default=1800)
    # running | halted | completed | cancelled (protocols/README.md, "Firmware campaigns")
    state: Mapped[str] = mapped_column(String(16), default="running")
    halted_reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[float] = mapped_column(Float, default=now)


class CampaignNode(Base):
    __tablename__ = "campaign_nodes"
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    node_id: Mapped[int] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    # pending | downloading | verified | updated | failed | rolled_back
    state: Mapped[str] = mapped_column(String(16), default="pending")
    command_id: Mapped[str | None] = mapped_column(String(40))
    boot: Mapped[int | None] = mapped_column(Integer)  # node's boot counter when it verified
    dispatched_at: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[float] = mapped_column(Float, default=now)


class Alarm(Base):
    """One alarm condition per (pole, node, code, src) at a time; re-raising counts it."""

    __tablename__ = "alarms"
    # one open alarm per condition, also when two controllers raise it at once (the second's
    # insert fails, and Registry.retrying runs it again: it then counts the first's)
    __table_args__ = (
        Index(
            "alarms_open_once",
            "pole_id",
            text("coalesce(node, '')"),
            "code",
            "src",
            unique=True,
            sqlite_where=text("state <> 'cleared'"),
            postgresql_where=text("state <> 'cleared'"),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    pole_id: Mapped[str] = mapped_column(ForeignKey("poles.id", ondelete="CASCADE"), index=True)
    node: Mapped[str | None] = mapped_column(String(64))
    module_id: Mapped[int | None] = mapped_column(ForeignKey("modules.id", ondelete="SET NULL"))
    code: Mapped[str] = mapped_column(String(40))
    src: Mapped[str] = mapped_column(String(64), default="")
    severity: Mapped[str] = mapped_column(String(16))  # critical | major | minor | warning
    # active | acknowledged | cleared
    state: Mapped[str] = mapped_column(String(16), default="active", index=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    count: Mapped[int] = mapped_column(Integer, default=1)
    raised_at: Mapped[float] = mapped_column(Float, default=now)
    updated_at: Mapped[float] = mapped_column(Float, default=now)
    acknowledged_by: Mapped[str | None] = mapped_column(String(100))
    acknowledged_at: Mapped[float | None] = mapped_column(Float)
    cleared_by: Mapped[str | None] = mapped_column(String(100))
    cleared_at: Mapped[float | None] = mapped_column(Float)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(16))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class ApiToken(Base):
    """A bearer token; only its SHA-256 is stored, so a database leak gives no working token."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[float] = mapped_column(Float, default=now)
    expires_at: Mapped[float | None] = mapped_column(Float)
    last_used: Mapped[float | None] = mapped_column(Float)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    ts: Mapped[float] = mapped_column(Float, default=now, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(100))
    owner_id: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class RegistryStamp(Base):
    """One row whose version the database itself moves (triggers, migration 0002) whenever
    owners, poles or modules change, by whatever writer: see controller/registry/stamp.py."""

    __tablename__ = "registry_stamp"
    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)


class OutboxMessage(Base):
    """A message to a node, written in the transaction that decided it (a transactional outbox)
    and deleted once the broker has acknowledged it. Whichever controller leads drains the table
    in id order, so a command committed by a controller that died before sending it still goes
    out, from the survivor (controller/dispatch.py, controller/leadership.py)."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(primary_key=True)
    topic: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    retain: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class ServiceAccount(Base):
    """A controller process's broker account (controller/mqtt_auth.py process_identity): kept in
    the registry so that whichever controller rewrites the broker's files writes every
    controller's accounts, not only its own."""

    __tablename__ = "service_accounts"
    username: Mapped[str] = mapped_column(String(140), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[float] = mapped_column(Float, default=now)
