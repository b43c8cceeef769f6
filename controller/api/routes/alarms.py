"""Alarms (acknowledge, clear), energy with the saving against always-on, and the audit log."""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy import select

from controller import policy
from controller.api.auth import DB, IdPath, Operator, Principal, Viewer, audit, not_found
from controller.api.deps import State
from controller.api.routes.registry import get_group, get_pole
from controller.api.schemas import AlarmOut, AuditOut
from controller.energy import pole_energy, summary
from controller.registry.models import Alarm, AuditEntry, GroupPole, Pole

router = APIRouter(prefix="/api", tags=["alarms and energy"])
Limit = Annotated[int, Query(ge=1, le=5000)]


def _alarm_query(p: Principal) -> Any:
    return select(Alarm).where(policy.visible_alarms(p))


@router.get("/alarms", response_model=list[AlarmOut], summary="Alarms, newest first")
def list_alarms(
    db: DB,
    p: Viewer,
    state: str | None = Query(None, pattern="^(active|acknowledged|cleared|open)$"),
    pole: str | None = None,
    severity: str | None = None,
    limit: Limit = 500,
) -> list[Alarm]:
    q = _alarm_query(p)
    if state == "open":
        q = q.where(Alarm.state != "cleared")
    elif state is not None:
        q = q.where(Alarm.state == state)
    if pole is not None:
        q = q.where(Alarm.pole_id == pole)
    if severity is not None:
        q = q.where(Alarm.severity == severity)
    return list(db.scalars(q.order_by(Alarm.updated_at.desc()).limit(limit)))


def _get_alarm(db: DB, p: Principal, alarm_id: IdPath) -> Alarm:
    alarm: Alarm | None = db.scalar(_alarm_query(p).where(Alarm.id == alarm_id))
    if alarm is None:
        raise not_found("alarm", alarm_id)
    return alarm


@router.post("/alarms/{alarm_id}/acknowledge", response_model=AlarmOut, summary="Acknowledge")
def acknowledge(db: DB, p: Operator, alarm_id: IdPath) -> Alarm:
    alarm = _get_alarm(db, p, alarm_id)
    if alarm.state != "active":
        raise HTTPException(status.HTTP_409_CONFLICT, f"alarm is {alarm.state}")
    alarm.state, alarm.acknowledged_by, alarm.acknowledged_at = (
        "acknowledged",
        p.username,
        time.time(),
    )
    audit(db, p, "alarm.acknowledge", "alarm", alarm.id, pole=alarm.pole_id, code=alarm.code)
    return alarm


@router.post("/alarms/{alarm_id}/clear", response_model=AlarmOut, summary="Clear by hand")
def clear(db: DB, p: Operator, alarm_id: IdPath) -> Alarm:
    alarm = _get_alarm(db, p, alarm_id)
    if alarm.state == "cleared":
        raise HTTPException(status.HTTP_409_CONFLICT, "alarm is cleared")
    now = time.time()
    alarm.state, alarm.cleared_by, alarm.cleared_at, alarm.updated_at = (
        "cleared",
        p.username,
        now,
        now,
    )
    audit(db, p, "alarm.clear", "alarm", alarm.id, pole=alarm.pole_id, code=alarm.code)
    return alarm


# ---- energy --------------------------------------------------------------------------------
Day = Annotated[dt.date, Query(description="first UTC day (inclusive)")]


def _days(start: dt.date, end: dt.date | None) -> tuple[dt.date, dt.date]:
    end = end or start
    if end < start or (end - start).days > 366:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "end: must be on or after start, at most 366 days later",
        )
    return start, end


@router.get("/energy/poles/{pole_id}", summary="Energy per day of a pole, with the saving")
def energy_pole(
    db: DB, state: State, p: Viewer, pole_id: str, start: Day, end: dt.date | None = None
) -> dict[str, Any]:
    pole = get_pole(db, p, pole_id)
    if not policy.sees_energy(p, pole):
        raise not_found("energy of pole", pole_id)  # the lamp is another owner's
    a, b = _days(start, end)
    return {"pole": pole.id, **summary([pole_energy(state.store, pole, a, b)], a, b)}


@router.get("/energy/groups/{group_id}", summary="Energy per day of a group, with the saving")
def energy_group(
    db: DB, state: State, p: Viewer, group_id: IdPath, start: Day, end: dt.date | None = None
) -> dict[str, Any]:
    g = get_group(db, p, group_id)
    a, b = _days(start, end)
    members = db.scalars(
        select(Pole).where(Pole.id.in_(select(GroupPole.pole_id).where(GroupPole.group_id == g.id)))
    ).all()
    poles = [x for x in members if policy.sees_energy(p, x)]
    energy = [pole_energy(state.store, pole, a, b) for pole in poles]
    return {"group": g.id, "poles": len(poles), **summary(energy, a, b)}


# ---- audit ---------------------------------------------------------------------------------
@router.get("/audit", response_model=list[AuditOut], summary="Who changed what, newest first")
def audit_log(
    db: DB,
    p: Viewer,
    actor: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    limit: Limit = 500,
) -> list[AuditEntry]:
    q = select(AuditEntry).where(policy.visible_audit(p, p.username))
    if actor is not None:
        q = q.where(AuditEntry.actor == actor)
    if target_type is not None:
        q = q.where(AuditEntry.target_type == target_type)
    if target_id is not None:
        q = q.where(AuditEntry.target_id == target_id)
    return list(db.scalars(q.order_by(AuditEntry.id.desc()).limit(limit)))
