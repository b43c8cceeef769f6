"""What ingest saw: counters, the dead-letter store, node states, events and acks.

Node states, events and acks belong to the node, so an owner-scoped account sees those of the
nodes on its own poles (``controller.policy``); counters and refused messages are the
municipality's."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query

from controller import policy
from controller.api.auth import DB, Principal, Viewer, forbidden
from controller.api.deps import State

router = APIRouter(prefix="/api/ingest", tags=["ingest"])

Limit = Annotated[int, Query(ge=1, le=1000)]


def _poles(db: DB, p: Principal) -> set[str] | None:
    q = policy.node_poles(p)
    return None if q is None else set(db.scalars(q))


def _fleet_wide(p: Principal) -> None:
    if not policy.sees_fleet_ingest(p):
        raise forbidden("fleet-wide ingest data is the infrastructure operator's")


@router.get("/stats", summary="Ingest counters since start")
def stats(state: State, p: Viewer) -> dict[str, Any]:
    _fleet_wide(p)
    if state.ingest is None:
        return {"enabled": False}
    return {
        "enabled": True,
        "connected": state.ingest.connected.is_set(),
        **asdict(state.ingest.stats),
    }


@router.get("/dead-letters", summary="Refused messages, newest first, with the reason")
def dead_letters(state: State, p: Viewer, limit: Limit = 100) -> list[dict[str, Any]]:
    _fleet_wide(p)
    return state.ops.dead_letters(limit)


@router.get("/nodes", summary="Last known state of the nodes on your poles (birth, last will)")
def nodes(db: DB, state: State, p: Viewer) -> list[dict[str, Any]]:
    return state.ops.node_states(_poles(db, p))


@router.get("/events", summary="Presence and alarm events, newest first")
def events(
    db: DB, state: State, p: Viewer, limit: Limit = 100, kind: str | None = None
) -> list[dict[str, Any]]:
    return state.ops.events(limit, kind, _poles(db, p))


@router.get("/acks", summary="Acknowledgements of commands and configs, newest first")
def acks(db: DB, state: State, p: Viewer, limit: Limit = 100) -> list[dict[str, Any]]:
    return state.ops.acks(limit, _poles(db, p))
