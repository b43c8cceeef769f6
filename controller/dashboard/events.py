"""Live updates for the dashboard: server-sent events of node state changes and alarms.

Theory of operation. One poller per app reads the registry once a second (node status and light
level, alarms touched since the last look), diffs against what it saw, and fans the changes out
to every open stream through a bounded queue per stream, filtered by the stream's owner scope.
Nothing has to call into it: the ingest and the API keep writing the registry as they do, so a
second controller process that writes the same registry shows up in the streams too. With no
stream open the poller stops.

Authentication. ``EventSource`` cannot send an ``Authorization`` header, so the page first
``POST``s ``/api/events/ticket`` with its bearer token and gets a ticket: random, single use,
valid for 30 s, held in this process only. The stream URL carries the ticket, never the bearer
token, so the long-lived token does not end up in access logs, browser history or proxies; no
cookie is set, so there is nothing for cross-site requests to ride on (no CSRF). A stream ends
after ``max_age_s``; the page then asks for a new ticket, which re-checks the token (revoked or
expired tokens stop getting updates within that time). Several controller processes behind one
address need sticky sessions for the ticket (it lives in the process that issued it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select

from controller import policy
from controller.api.auth import Principal
from controller.api.schemas import AlarmOut
from controller.registry.db import Registry
from controller.registry.models import Alarm, Module, Node

log = logging.getLogger("streetpole.dashboard")

TICKET_TTL_S = 30.0
MAX_TICKETS = 10_000
QUEUE_MAX = 1000


@dataclass(eq=False)  # identity: each stream is its own subscriber
class Subscriber:
    principal: Principal
    queue: asyncio.Queue[tuple[str, dict[str, Any]]] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_MAX)
    )
    poles: frozenset[str] | None = None  # None: every pole (unscoped)
    modules: frozenset[int] = frozenset()
    scope_at: float = 0.0
    dropped: int = 0
    overflowed: bool = False

    def wants(self, kind: str, data: dict[str, Any]) -> bool:
        if self.poles is None:
            return True
        if kind == "node":
            return data["pole"] in self.poles
        if kind == "alarm":
            return policy.sees_alarm(self.principal, data, self.poles, self.modules)
        return True

    def put(self, kind: str, data: dict[str, Any]) -> None:
        if self.overflowed:
            self.dropped += 1
            return
        try:
            self.queue.put_nowait((kind, data))
        except asyncio.QueueFull:
            # a stream that cannot keep up gets one "resync": the page reloads what it shows
            self.dropped += 1
            self.overflowed = True


class Hub:
    def __init__(self, registry: Registry, period_s: float = 1.0) -> None:
        self.registry = registry
        self.period_s = period_s
        self.tickets: dict[str, tuple[float, Principal]] = {}
        self.subscribers: set[Subscriber] = set()
        self.nodes: dict[int, tuple[str, float | None]] = {}
        self.alarms: dict[int, tuple[str, int, float]] = {}
        self.cursor = 0.0
        self.primed = False
        self.task: asyncio.Task[None] | None = None
        self.sent = 0
        self.dropped = 0
        self.polls = 0  # polls fanned out so far: how a test knows the poller has looked again

    # ---- tickets -----------------------------------------------------------------------------
    def ticket(self, p: Principal) -> str:
        now = time.monotonic()
        if len(self.tickets) >= MAX_TICKETS:
            self.tickets = {k: v for k, v in self.tickets.items() if v[0] > now}
            if len(self.tickets) >= MAX_TICKETS:
                raise OverflowError("too many unused stream tickets")
        t = secrets.token_urlsafe(24)
        self.tickets[t] = (now + TICKET_TTL_S, p)
        return t

    def redeem(self, ticket: str) -> Principal | None:
        hit = self.tickets.pop(ticket, None)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    # ---- streams -----------------------------------------------------------------------------
    async def stream(
        self,
        p: Principal,
        gone: Callable[[], Awaitable[bool]],
        max_age_s: float = 300.0,
        keepalive_s: float = 15.0,
    ) -> AsyncIterator[str]:
        """SSE text for one client until ``max_age_s`` or until ``gone()`` says the client
        left (checked every second: a quiet stream would otherwise notice only when it next
        writes)."""
        sub = Subscriber(p)
        await asyncio.to_thread(self._scope, sub)
        self.subscribers.add(sub)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run(), name="dashboard-events")
        ends = time.monotonic() + max_age_s
        quiet_since = time.monotonic()
        try:
            yield "retry: 2000\n\n"
            yield _event("hello", {"user": p.username, "role": p.role, "period_s": self.period_s})
            while True:
                left = ends - time.monotonic()
                if left <= 0:
                    yield _event("bye", {"reason": "stream age; reconnect with a new ticket"})
                    return
                try:  # asyncio.timeout: 3.11's wait_for can swallow a cancel (ingest/worker.py)
                    async with asyncio.timeout(min(1.0, left)):
                        kind, data = await sub.queue.get()
                except TimeoutError:
                    if await gone():
                        return
                    if time.monotonic() - quiet_since >= keepalive_s:
                        quiet_since = time.monotonic()
                        yield ": keepalive\n\n"
                    continue
                quiet_since = time.monotonic()
                yield _event(kind, data)
                if sub.overflowed and sub.queue.empty():
                    sub.overflowed = False
                    yield _event("resync", {"dropped": sub.dropped})
        finally:
            self.subscribers.discard(sub)
            if not self.subscribers and self.task is not None:
                task, self.task = self.task, None
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                self.primed = False
                if self.subscribers and self.task is None:  # someone came while it stopped
                    self.task = asyncio.create_task(self._run(), name="dashboard-events")

    async def _run(self) -> None:
        while True:
            try:
                events = await asyncio.to_thread(self.poll)
                now = time.monotonic()
                for sub in list(self.subscribers):
                    if sub.poles is not None and now - sub.scope_at > 30:
                        await asyncio.to_thread(self._scope, sub)
                    for kind, data in events:
                        if sub.wants(kind, data):
                            sub.put(kind, data)
                            self.sent += 1
                self.dropped = sum(s.dropped for s in self.subscribers)
            except Exception:
                log.exception("dashboard event poll failed")
            self.polls += 1
            await asyncio.sleep(self.period_s)

    def _scope(self, sub: Subscriber) -> None:
        sub.scope_at = time.monotonic()
        poles = policy.node_poles(sub.principal)
        if poles is None:
            return
        with self.registry.session() as db:
            sub.poles = frozenset(db.scalars(poles))
            modules = select(Module.id).where(policy.visible_modules(sub.principal))
            sub.modules = frozenset(db.scalars(modules))

    # ---- the poll ----------------------------------------------------------------------------
    def poll(self) -> list[tuple[str, dict[str, Any]]]:
        """What changed since the last poll (nothing on the first: pages load state by REST)."""
        out: list[tuple[str, dict[str, Any]]] = []
        now = time.time()
        with self.registry.session() as db:
            rows = db.execute(
                select(Node.id, Node.pole_id, Node.node, Node.status, Node.level, Node.last_seen)
            ).all()
            # overlap: rows committed late by another transaction; nothing older at the start
            since = (self.cursor if self.primed else now) - 5.0
            touched = or_(
                Alarm.updated_at >= since,
                Alarm.acknowledged_at >= since,
                Alarm.cleared_at >= since,
            )
            alarms = list(db.scalars(select(Alarm).where(touched)))
            alarm_out = [AlarmOut.model_validate(a).model_dump() for a in alarms]
        seen = set()
        for nid, pole, node, status, level, last_seen in rows:
            seen.add(nid)
            cur = (status, level)
            if self.nodes.get(nid) != cur:
                self.nodes[nid] = cur
                if self.primed:
                    out.append(
                        (
                            "node",
                            {
                                "id": nid,
                                "pole": pole,
                                "node": node,
                                "status": status,
                                "level": level,
                                "last_seen": last_seen,
                            },
                        )
                    )
        for gone in set(self.nodes) - seen:
            del self.nodes[gone]
        for a in alarm_out:
            sig = (a["state"], a["count"], a["updated_at"])
            if self.alarms.get(a["id"]) != sig:
                self.alarms[a["id"]] = sig
                if self.primed:
                    out.append(("alarm", a))
        if len(self.alarms) > 50_000:
            self.alarms.clear()  # the overlap window re-reads recent ones; older never return
        self.cursor = now
        self.primed = True
        return out


def _event(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
