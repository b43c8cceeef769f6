"""What ingest saw: counters, the dead-letter store, node states, events and acks."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from controller.api.auth import require
from controller.api.deps import State

router = APIRouter(prefix="/api/ingest", tags=["ingest"], dependencies=[Depends(require("viewer"))])

Limit = Annotated[int, Query(ge=1, le=1000)]


@router.get("/stats", summary="Ingest counters since start")
def stats(state: State) -> dict[str, Any]:
    if state.ingest is None:
        return {"enabled": False}
    return {
        "enabled": True,
        "connected": state.ingest.connected.is_set(),
        **asdict(state.ingest.stats),
    }


@router.get("/dead-letters", summary="Refused messages, newest first, with the reason")
def dead_letters(state: State, limit: Limit = 100) -> list[dict[str, Any]]:
    return state.ops.dead_letters(limit)


@router.get("/nodes", summary="Last known state of every node (from its birth and last will)")
def nodes(state: State) -> list[dict[str, Any]]:
    return state.ops.node_states()


@router.get("/events", summary="Presence and alarm events, newest first")
def events(state: State, limit: Limit = 100, kind: str | None = None) -> list[dict[str, Any]]:
    return state.ops.events(limit, kind)


@router.get("/acks", summary="Acknowledgements of commands and configs, newest first")
def acks(state: State, limit: Limit = 100) -> list[dict[str, Any]]:
    return state.ops.acks(limit)
