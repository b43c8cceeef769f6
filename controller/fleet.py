"""The fleet: what the controller tells the nodes and what it makes of their answers.

Down: node configs compiled from the registry (a pole's or its group's dimming profile, its
location, its neighbours) and pushed retained with a rising version; commands (overrides,
reverts, reboots, self-tests, signed firmware updates), one per node. Messages are put in the
session's outbox and handed to the dispatcher only after the transaction commits, so the broker
never hears of a command the registry does not hold.

Up (called by ingest after each committed batch): acks settle commands and configs, node
states keep status and firmware current and raise or clear ``nodeOffline``, alarm events raise
and clear alarms, and firmware campaigns move on from both.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, select, update
from sqlalchemy.orm import Session

from controller import policy
from controller.ingest.decode import Sorted
from controller.registry.models import (
    Alarm,
    Campaign,
    CampaignNode,
    Command,
    DimmingProfile,
    FirmwarePackage,
    Group,
    GroupPole,
    Module,
    Node,
    NodeConfig,
    Pole,
    Program,
)
from controller.registry.scope import distance_m
from protocols import codec, topics
from spnode import updsig

log = logging.getLogger("streetpole.fleet")

SEVERITY = {
    "supplyLoss": "critical",
    "safeMode": "critical",
    "nodeOffline": "major",
    "nodeNeverHeard": "major",
    "lampFailure": "major",
    "dimmingFailure": "major",
    "relayFailure": "major",
    "lampUnexpectedOn": "major",
    "controlGearCommFailure": "major",
    "cyclingFailure": "minor",
    "sensorFault": "minor",
    "bufferOverflow": "minor",
    "lowHeap": "minor",
    "clockInvalid": "minor",
    "clockAhead": "minor",
    "configRejected": "minor",
    "updateFailed": "minor",
    "noiseHigh": "warning",
    "pm25High": "warning",
}
MAX_NEIGHBOURS = 8
# What a node without a profile runs: full light from sunset to sunrise, no dimming.
DUSK_TO_DAWN: dict[str, Any] = {
    "programs": {
        "dusk-to-dawn": {"steps": [{"at": "sunset", "level": 1.0}, {"at": "sunrise", "level": 0}]}
    },
    "default_program": "dusk-to-dawn",
}


def outbox(db: Session) -> list[tuple[str, dict[str, Any], bool]]:
    box: list[tuple[str, dict[str, Any], bool]] = db.info.setdefault("outbox", [])
    return box


def node_topic(node: Node, channel: str) -> str:
    return str(topics.Topic(node.pole_id, node.node, channel))


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


# ---- configs -------------------------------------------------------------------------------
def profile_for(db: Session, pole: Pole) -> DimmingProfile | None:
    """The pole's own profile, else that of its first group (by group id) that has one; only
    a profile (and group) whose owner steers the pole's light counts (``controller.policy``),
    whatever the registry's rows say."""
    if pole.profile_id is not None:
        own = db.get(DimmingProfile, pole.profile_id)
        if own is not None and policy.profile_applies(own, pole):
            return own
    rows = db.execute(
        select(Group, DimmingProfile)
        .join(GroupPole, GroupPole.group_id == Group.id)
        .join(DimmingProfile, DimmingProfile.id == Group.profile_id)
        .where(GroupPole.pole_id == pole.id)
        .order_by(Group.id)
    ).all()
    for group, prof in rows:
        if policy.group_applies(group, pole) and policy.profile_applies(prof, pole):
            return prof
    return None


def neighbours(db: Session, pole: Pole, radius_m: float) -> list[dict[str, str]]:
    """Light nodes of the nearest poles within ``radius_m`` (a box query, then true distance)."""
    dlat = radius_m / 111_000
    dlon = dlat / max(0.1, abs(math.cos(math.radians(pole.lat))))
    near = db.scalars(
        select(Pole).where(
            Pole.id != pole.id,
            Pole.lat.between(pole.lat - dlat, pole.lat + dlat),
            Pole.lon.between(pole.lon - dlon, pole.lon + dlon),
        )
    ).all()
    ranked = sorted(
        (distance_m(pole.lat, pole.lon, p.lat, p.lon), p.id, p) for p in near if p.nodes
    )
    out: list[dict[str, str]] = []
    for d, _pid, p in ranked:
        if d > radius_m:
            break
        lighting = {m.node for m in p.modules if m.type == "lighting" and m.node}
        for n in p.nodes:
            if not lighting or n.node in lighting:
                out.append({"pole": p.id, "node": n.node})
        if len(out) >= MAX_NEIGHBOURS:
            break
    return out[:MAX_NEIGHBOURS]


def compile_config(db: Session, node: Node, version: int) -> dict[str, Any]:
    """The node's config message; raises ProtocolError when the profile does not validate."""
    pole = node.pole
    profile = profile_for(db, pole)
    cfg: dict[str, Any] = {
        "version": version,
        "report_period_s": profile.report_period_s if profile else 60,
        "location": {"lat": pole.lat, "lon": pole.lon},
        "tz": profile.tz if profile else "CET-1CEST,M3.5.0,M10.5.0/3",
    }
    if profile is not None:
        names = {profile.default_program} | {r["program"] for r in profile.calendar}
        programs = {
            p.name: {"steps": p.steps}
            for p in db.scalars(select(Program).where(Program.name.in_(names)))
        }
        dim: dict[str, Any] = {
            "programs": programs,
            "default_program": profile.default_program,
            "calendar": profile.calendar,
            "min_level": profile.min_level,
            "max_level": profile.max_level,
        }
        if profile.safe_level is not None:
            dim["safe_level"] = profile.safe_level
        if profile.presence:
            dim["presence"] = profile.presence
        if profile.noise_trigger:
            dim["noise_trigger"] = profile.noise_trigger
        cfg["dimming"] = dim
        nb = neighbours(db, pole, profile.neighbour_radius_m)
        if nb:
            cfg["neighbours"] = nb
    else:
        cfg["dimming"] = DUSK_TO_DAWN
    calibration: dict[str, Any] = {}
    for m in pole.modules:
        if m.node == node.node:
            calibration.update(m.attributes.get("calibration", {}))
    if calibration:
        cfg["calibration"] = calibration
    checked: dict[str, Any] = codec.check("config", cfg)
    return checked


def push_config(db: Session, node: Node, force: bool = False) -> NodeConfig | None:
    """Compile and, when it differs from the last pushed (or ``force``), push a new version."""
    last = db.scalar(
        select(NodeConfig)
        .where(NodeConfig.node_id == node.id)
        .order_by(NodeConfig.version.desc())
        .limit(1)
    )
    draft = compile_config(db, node, node.config_version + 1)
    if last is not None and not force:
        same = {k: v for k, v in last.payload.items() if k != "version"}
        if same == {k: v for k, v in draft.items() if k != "version"}:
            return None
    node.config_version += 1
    row = NodeConfig(node_id=node.id, version=node.config_version, payload=draft)
    db.add(row)
    outbox(db).append((node_topic(node, topics.CONFIG), draft, True))
    return row


def push_configs(db: Session, poles: Iterable[Pole]) -> int:
    n = 0
    for pole in poles:
        for node in pole.nodes:
            n += push_config(db, node) is not None
    return n


# ---- commands ------------------------------------------------------------------------------
def issue_command(
    db: Session,
    node: Node,
    kind: str,
    who: str,
    fields: dict[str, Any] | None = None,
    override_id: str | None = None,
    campaign_id: int | None = None,
) -> Command:
    cmd = {"id": new_id("c"), "ts": int(time.time()), "cmd": kind, **(fields or {})}
    if kind == "update":
        cmd["sig"] = update_signature(node, cmd)
    codec.check("cmd", cmd)
    row = Command(
        id=cmd["id"],
        node_id=node.id,
        kind=kind,
        payload=cmd,
        created_by=who,
        override_id=override_id,
        campaign_id=campaign_id,
    )
    db.add(row)
    outbox(db).append((node_topic(node, topics.CMD), cmd, False))
    return row


def update_signature(node: Node, cmd: dict[str, Any]) -> str:
    """What the firmware checks before it takes an update, made by the firmware's own code
    (spnode.updsig: the manifest binds the command's id, this node, issue time, expiry, rollback
    flag and the image), so the format is written once."""
    return str(updsig.sign(cmd, bytes.fromhex(node.update_key), f"{node.pole_id}/{node.node}"))


def update_command(
    db: Session,
    node: Node,
    pkg: FirmwarePackage,
    who: str,
    cid: int | None,
    valid_s: int,
    rollback: bool = False,
) -> Command:
    """A signed update to ``pkg``, which the node takes until ``valid_s`` from now; a node
    refuses a version not above the highest it has taken unless ``rollback`` is signed in."""
    fields: dict[str, Any] = {
        "url": pkg.url,
        "version": pkg.version,
        "size": pkg.size,
        "sha256": pkg.sha256,
        "expiry": int(time.time()) + valid_s,
    }
    if rollback:
        fields["rollback"] = True
    return issue_command(db, node, "update", who, fields, campaign_id=cid)


# ---- alarms --------------------------------------------------------------------------------
def _open_alarms(pole: str, node: str | None, code: str, src: str) -> Select[Alarm]:
    """One condition is one alarm until it is cleared: (pole, node, code, src)."""
    return select(Alarm).where(
        Alarm.pole_id == pole,
        Alarm.node == node,
        Alarm.code == code,
        Alarm.src == src,
        Alarm.state != "cleared",
    )


def raise_alarm(
    db: Session, pole: str, node: str | None, code: str, src: str = "", detail: str = ""
) -> Alarm:
    alarm = db.scalar(_open_alarms(pole, node, code, src))
    now = time.time()
    if alarm is not None:
        alarm.count += 1
        alarm.updated_at = now
        alarm.detail = detail or alarm.detail
        return alarm
    module_id = None
    if src:
        module_id = db.scalar(
            select(Module.id).where(Module.pole_id == pole, Module.src == src).limit(1)
        )
    alarm = Alarm(
        pole_id=pole,
        node=node,
        code=code,
        src=src,
        module_id=module_id,
        severity=SEVERITY.get(code, "minor"),
        detail=detail,
    )
    db.add(alarm)
    return alarm


def clear_alarm(db: Session, pole: str, node: str | None, code: str, src: str, by: str) -> int:
    alarms = db.scalars(_open_alarms(pole, node, code, src)).all()
    now = time.time()
    for a in alarms:
        a.state, a.cleared_at, a.cleared_by, a.updated_at = "cleared", now, by, now
    return len(alarms)


# ---- what came back ------------------------------------------------------------------------
def _node(db: Session, pole: str, node: str) -> Node | None:
    return db.scalar(select(Node).where(Node.pole_id == pole, Node.node == node))


class Heard:
    """Which nodes the registry already shows online, and when each was last heard.

    Ingest calls ``apply_ingest`` after every committed batch, up to tens of times a second; it
    must not query the registry for every node in every batch (a profile of the ingest
    benchmark showed those lookups taking a fifth of the controller). So only a node not known
    to be online costs a query; ``last_seen`` is collected here and written in bulk by
    ``write_heard`` from the fleet loop. Thread-safe: ingest runs in a worker thread.
    """

    UNKNOWN_RECHECK_S = 30.0  # a node not in the registry is looked up again this often

    def __init__(self) -> None:
        self.online: set[tuple[str, str]] = set()
        self.unknown: dict[tuple[str, str], float] = {}  # not registered: skip until then
        self.last_seen: dict[tuple[str, str], float] = {}
        self.lock = threading.Lock()

    def needs_lookup(self, key: tuple[str, str], now: float) -> bool:
        """Call with the lock held."""
        return key not in self.online and self.unknown.get(key, 0.0) <= now

    def pending(self, key: tuple[str, str]) -> float | None:
        """When ingest last heard the node, if not yet written to the registry."""
        with self.lock:
            return self.last_seen.get(key)

    def take(self) -> dict[tuple[str, str], float]:
        with self.lock:
            out, self.last_seen = self.last_seen, {}
        return out

    def give_back(self, times: dict[tuple[str, str], float]) -> None:
        """Times taken for a write that failed: kept for the next (newer ones win)."""
        with self.lock:
            for key, t in times.items():
                if self.last_seen.get(key, 0.0) < t:
                    self.last_seen[key] = t


def apply_ingest(db: Session, s: Sorted, heard: Heard) -> None:
    """Fold one committed ingest batch into the registry (unknown nodes are ignored)."""
    now = time.time()
    seen = {(b.pole, b.node) for b in s.batches}
    seen |= {(p, n) for p, n, _ in s.acks} | {(p, n) for p, n, _ in s.events}
    with heard.lock:
        for key in seen:
            heard.last_seen[key] = now
        # in key order: controllers sharing the registry then lock nodes' rows in one order
        fresh = sorted(key for key in seen if heard.needs_lookup(key, now))
    for pole, name, ack in s.acks:
        node = _node(db, pole, name)
        if node is not None:
            _apply_ack(db, node, ack, now)
    # anything heard means the node is there; its state messages, applied after, have the
    # last word (a last will in the same batch wins)
    for pole, name in fresh:
        node = _node(db, pole, name)
        if node is None:
            with heard.lock:
                heard.unknown[(pole, name)] = now + heard.UNKNOWN_RECHECK_S
        else:
            node.last_seen = now
            if node.status != "online":
                node.status = "online"
                clear_alarm(db, pole, name, "nodeOffline", "", "node")
                clear_alarm(db, pole, name, "nodeNeverHeard", "", "node")
            with heard.lock:
                heard.online.add((pole, name))
    for pole, name, st in s.states:
        node = _node(db, pole, name)
        if node is not None:
            _apply_state(db, node, st, now)
            with heard.lock:
                if node.status == "online":
                    heard.online.add((pole, name))
                else:
                    heard.online.discard((pole, name))
    ahead: dict[tuple[str, str], list[int]] = {}
    for pole, name, secs in s.clock_ahead:
        ahead.setdefault((pole, name), []).append(secs)
    for (pole, name), times in ahead.items():
        if db.get(Pole, pole) is not None:
            detail = f"{len(times)} message(s) stamped up to {max(times)} s ahead: refused"
            alarm = raise_alarm(db, pole, name, "clockAhead", "", detail)
            alarm.count = (alarm.count or 1) + len(times) - 1  # one per refused message
    for pole, name, ev in s.events:
        if ev["kind"] == "alarm" and db.get(Pole, pole) is not None:
            src = ev.get("src", "")
            if ev.get("active", True):
                raise_alarm(db, pole, name, ev["code"], src, ev.get("detail", ""))
            else:
                clear_alarm(db, pole, name, ev["code"], src, "node")


def write_heard(db: Session, times: dict[tuple[str, str], float]) -> int:
    """Write last-seen times (from ``Heard.take``) in one executemany."""
    if times:
        nodes = cast(Table, Node.__table__)
        db.execute(
            update(nodes)
            .where(nodes.c.pole_id == bindparam("p"), nodes.c.node == bindparam("n"))
            .values(last_seen=bindparam("t")),
            [{"p": p, "n": n, "t": t} for (p, n), t in sorted(times.items())],
        )
    return len(times)


def _apply_ack(db: Session, node: Node, ack: dict[str, Any], now: float) -> None:
    if ack["kind"] == "config":
        version = ack["id"]
        if not (version.isascii() and version.isdigit() and len(version) <= 15):
            return  # names no version we pushed (a node's id may be any id): nothing to settle
        row = db.scalar(
            select(NodeConfig).where(
                NodeConfig.node_id == node.id, NodeConfig.version == int(version)
            )
        )
        if row is not None:
            row.status = "applied" if ack["status"] == "applied" else "rejected"
            row.reason, row.acked_at = ack.get("reason"), now
        return
    cmd = db.get(Command, ack["id"])
    if cmd is None or cmd.node_id != node.id:
        return
    cmd.status, cmd.reason, cmd.acked_at = ack["status"], ack.get("reason"), now
    if "checks" in ack:
        cmd.result = {"checks": ack["checks"]}
    if cmd.campaign_id is not None:
        cn = db.get(CampaignNode, (cmd.campaign_id, node.id))
        if cn is not None and cn.state in ("pending", "downloading"):
            cn.state = {
                "accepted": "downloading",
                "applied": "verified",
                "rejected": "failed",
                "failed": "failed",
            }[ack["status"]]
            cn.reason, cn.updated_at = ack.get("reason"), now
            if cn.state == "verified":
                cn.boot = None


def _apply_state(db: Session, node: Node, st: dict[str, Any], now: float) -> None:
    node.status = st["status"]
    node.last_seen = now
    if "fw" in st:
        node.firmware_version = st["fw"]
    if "level" in st:
        node.level = st["level"]
    if st["status"] == "offline":
        raise_alarm(db, node.pole_id, node.node, "nodeOffline", "", "last will: connection lost")
    else:
        clear_alarm(db, node.pole_id, node.node, "nodeOffline", "", "node")
        clear_alarm(db, node.pole_id, node.node, "nodeNeverHeard", "", "node")
        if st.get("safe_mode"):
            raise_alarm(db, node.pole_id, node.node, "safeMode", "", "repeated failed boots")
    # firmware campaigns: a birth after a verified update tells whether it took
    rows = db.execute(
        select(CampaignNode, FirmwarePackage)
        .join(Campaign, Campaign.id == CampaignNode.campaign_id)
        .join(FirmwarePackage, FirmwarePackage.id == Campaign.package_id)
        .where(CampaignNode.node_id == node.id, CampaignNode.state.in_(("downloading", "verified")))
    ).all()
    for cn, pkg in rows:
        if st["status"] != "online" or "boot" not in st:
            continue
        if st.get("fw") == pkg.version:
            cn.state, cn.updated_at = "updated", now
        elif cn.state == "verified":
            # still the old version: a rollback if the node booted after it verified the image
            # (it swaps at the next boot; a state published before that boot is no verdict)
            booted_at = now - st["uptime_s"] if "uptime_s" in st else None
            rebooted = booted_at is not None and booted_at > cn.updated_at
            if cn.boot is None and not rebooted:
                cn.boot = st["boot"]  # the birth that followed the verify, before the swap
            elif rebooted or st["boot"] > (cn.boot or 0):
                cn.state, cn.updated_at = "rolled_back", now
                cn.reason = f"came back with {st.get('fw')} after the update"


def mark_silent_nodes(db: Session, now: float, periods: int, heard: Heard) -> int:
    """Raise ``nodeOffline`` for online nodes silent for ``periods`` report periods."""
    n = 0
    period_of: dict[str, int] = {}
    online = db.scalars(select(Node).where(Node.status == "online")).all()
    for node in online:
        if node.pole_id not in period_of:
            profile = profile_for(db, node.pole)
            period_of[node.pole_id] = profile.report_period_s if profile else 60
        period = period_of[node.pole_id]
        if node.last_seen is not None and now - node.last_seen > periods * period:
            node.status = "silent"
            with heard.lock:
                heard.online.discard((node.pole_id, node.node))
            raise_alarm(db, node.pole_id, node.node, "nodeOffline", "", "missed reports")
            n += 1
    return n


def mark_never_heard(db: Session, now: float, grace_s: float) -> int:
    """Raise ``nodeNeverHeard`` for nodes provisioned more than ``grace_s`` ago and never heard
    since (a board that was never installed, or installed with the wrong credentials or broker
    address); the status becomes ``silent``, so the alarm is raised once. Hearing the node
    clears it."""
    n = 0
    waiting = db.scalars(
        select(Node).where(
            Node.status == "unknown",
            Node.last_seen.is_(None),
            Node.provisioned_at < now - grace_s,
        )
    ).all()
    for node in waiting:
        node.status = "silent"
        hours = (now - (node.provisioned_at or now)) / 3600
        detail = f"provisioned {hours:.1f} h ago and never heard"
        raise_alarm(db, node.pole_id, node.node, "nodeNeverHeard", "", detail)
        n += 1
    return n


# ---- firmware campaigns --------------------------------------------------------------------
FINAL = ("updated", "failed", "rolled_back")
BAD = ("failed", "rolled_back")


def campaign_tick(db: Session, campaign: Campaign, now: float) -> int:
    """Advance one running campaign: time out, check the failure rate, dispatch at the pace.
    Returns the number of update commands issued."""
    if campaign.state != "running":
        return 0
    members = db.scalars(select(CampaignNode).where(CampaignNode.campaign_id == campaign.id)).all()
    for cn in members:
        # sent and not finished: a node that never answers (offline, or the command lost) fails
        # too, or the campaign would wait for it for ever
        if (
            cn.state in ("pending", "downloading", "verified")
            and cn.dispatched_at is not None
            and now - cn.dispatched_at > campaign.timeout_s
        ):
            cn.state, cn.reason, cn.updated_at = "failed", "no report within the timeout", now
    finished = [cn for cn in members if cn.state in FINAL]
    bad = [cn for cn in finished if cn.state in BAD]
    if len(finished) >= campaign.min_finished and len(bad) / len(finished) > (
        campaign.failure_threshold
    ):
        campaign.state = "halted"
        campaign.halted_reason = (
            f"{len(bad)} of {len(finished)} finished nodes failed "
            f"(threshold {campaign.failure_threshold:.0%})"
        )
        return 0
    if len(finished) == len(members):
        campaign.state = "completed"
        return 0
    dispatched = sum(1 for cn in members if cn.dispatched_at is not None)
    allowed = int(campaign.nodes_per_minute * (now - campaign.created_at) / 60) + 1
    pkg = db.get(FirmwarePackage, campaign.package_id)
    issued = 0
    for cn in members:
        if dispatched + issued >= allowed or pkg is None:
            break
        if cn.state != "pending" or cn.dispatched_at is not None:
            continue
        node = db.get(Node, cn.node_id)
        if node is None:
            continue
        # valid as long as the campaign waits for this node's answer
        cmd = update_command(db, node, pkg, campaign.created_by, campaign.id, campaign.timeout_s)
        cn.command_id, cn.dispatched_at, cn.updated_at = cmd.id, now, now
        issued += 1
    return issued
