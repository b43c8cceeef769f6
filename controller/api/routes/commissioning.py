"""Commissioning records: what a technician installed where, kept by the controller.

`POST /api/commissioning` (technician) stores the record `streetpole node commission` writes;
`GET /api/commissioning` and `/{id}` read them back (owner-scoped like the poles). A record is
kept as an audit entry (`node.commission`, the record as its detail), so it is written in the
same transaction as any audit entry and needs no table of its own.

A record is one commissioning: its pole/node and the time it started. Sending it again
(`send-record` of a file the controller already has, a retry after a timeout that did store it)
answers 200 with the record kept the first time instead of storing a second.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from controller import policy
from controller.api.auth import (
    DB,
    IdPath,
    Principal,
    Technician,
    Viewer,
    audit,
    forbidden,
    not_found,
)
from controller.api.routes.registry import get_pole
from controller.registry.models import AuditEntry, Node

router = APIRouter(prefix="/api/commissioning", tags=["nodes"])
ACTION = "node.commission"


class SensorResult(BaseModel):
    name: str = Field(max_length=32)
    type: str = Field("", max_length=32)
    ok: bool | None
    reason: str = Field("", max_length=200)


class Firmware(BaseModel):
    version: str = Field(max_length=32)
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    files: int | None = Field(None, ge=0)
    micropython: str | None = Field(None, max_length=200)


class Location(BaseModel):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class RecordIn(BaseModel):
    """The record as the CLI writes it; extra fields (steps, modules, self-test) are kept."""

    model_config = ConfigDict(extra="allow")

    schema_: Literal["streetpole-commissioning/1"] = Field(alias="schema")
    status: Literal["commissioned"]
    pole: str = Field(min_length=1, max_length=32)
    node: str = Field(min_length=1, max_length=32)
    hardware_id: str | None = Field(None, max_length=64)
    board: str = Field(max_length=64)
    firmware: Firmware
    sensors: list[SensorResult] = Field(max_length=32)
    location: Location
    time: str = Field(max_length=40)
    technician: str = Field(min_length=1, max_length=100)


class RecordOut(BaseModel):
    id: int
    recorded_at: float
    recorded_by: str
    record: dict[str, Any]


def _out(e: AuditEntry) -> RecordOut:
    return RecordOut(id=e.id, recorded_at=e.ts, recorded_by=e.actor, record=e.detail)


def _visible(p: Principal) -> Any:
    q = select(AuditEntry).where(AuditEntry.action == ACTION, policy.visible_records(p))
    return q


@router.post("", response_model=RecordOut, status_code=201, summary="Store a commissioning record")
def create(db: DB, p: Technician, body: RecordIn, response: Response) -> RecordOut:
    pole = get_pole(db, p, body.pole)
    node = db.scalar(select(Node).where(Node.pole_id == pole.id, Node.node == body.node))
    if node is None:
        raise not_found("node", f"{body.pole}/{body.node}")
    if not policy.sees_node(p, node):
        raise forbidden("only the pole's owner records what is installed on it")
    record = body.model_dump(mode="json", by_alias=True)
    record.pop("controller_record_id", None)  # the CLI notes our id in its file; not part of it
    target = f"{pole.id}/{body.node}"
    stored = select(AuditEntry).where(AuditEntry.action == ACTION, AuditEntry.target_id == target)
    for e in db.scalars(stored.order_by(AuditEntry.id)):
        if e.detail.get("time") == body.time:  # this commissioning is stored already
            response.status_code = 200
            return _out(e)
    audit(db, p, ACTION, "node", target, pole.owner_id, **record)
    db.flush()
    entry = db.scalars(stored.order_by(AuditEntry.id.desc()).limit(1)).one()
    return _out(entry)


@router.get("", response_model=list[RecordOut], summary="Commissioning records, newest first")
def list_records(
    db: DB,
    p: Viewer,
    pole: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
) -> list[RecordOut]:
    q = _visible(p)
    if pole is not None:
        q = q.where(AuditEntry.target_id.startswith(f"{pole}/"))
    return [_out(e) for e in db.scalars(q.order_by(AuditEntry.id.desc()).limit(limit))]


@router.get("/{record_id}", response_model=RecordOut, summary="One commissioning record")
def read_record(db: DB, p: Viewer, record_id: IdPath) -> RecordOut:
    e = db.scalar(_visible(p).where(AuditEntry.id == record_id))
    if e is None:
        raise not_found("commissioning record", record_id)
    return _out(e)
