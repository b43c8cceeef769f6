"""Which controller leads: the one that dispatches to the nodes and runs the fleet's rounds.

Several controllers may share one PostgreSQL registry (docs/scaling.md). Each of them ingests
and serves the APIs, but messages to nodes, campaign pacing, silent-node alarms and retention
must happen once: the leader holds a session-level advisory lock (``locks.LEADER``) on a
connection of its own and checks that connection every ``poll_s``. When the leader dies, its
connection closes and PostgreSQL releases the lock at once (a dead machine: when TCP keepalive
gives up, about ``KEEPALIVE_GIVE_UP_S``); a follower's next try takes it. A leader that loses
its connection steps down before it tries again, so two leaders can overlap by at most one poll
of the old one, and what the dispatcher might send twice in that time is idempotent at the node
(configs carry versions, commands ids).

On SQLite there is one controller, which leads from the start.
"""

from __future__ import annotations

import asyncio
import logging

import psycopg
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import make_url

from controller.registry import locks
from controller.settings import is_postgresql

log = logging.getLogger("streetpole.leadership")

KEEPALIVE = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}
KEEPALIVE_GIVE_UP_S = 5 + 2 * 3


def libpq_url(registry_url: str) -> str | None:
    """The registry's URL as libpq takes it, or None for SQLite (one controller only)."""
    if not is_postgresql(registry_url):
        return None
    url = make_url(registry_url)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class Leadership:
    def __init__(self, registry_url: str, poll_s: float = 1.0) -> None:
        self.conninfo = libpq_url(registry_url)
        self.poll_s = poll_s
        self.leading = asyncio.Event()
        self.taken = 0  # times this process became the leader

    @property
    def shared(self) -> bool:
        """Whether other controllers may share the registry (a PostgreSQL one)."""
        return self.conninfo is not None

    async def run(self) -> None:
        if self.conninfo is None:
            self._lead()
            return
        while True:
            try:
                conninfo = make_conninfo(self.conninfo, connect_timeout=5, **KEEPALIVE)
                conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
                async with conn:
                    await self._hold(conn)
            except (psycopg.Error, OSError, TimeoutError) as exc:
                if self.leading.is_set():
                    log.warning("leadership lost: %s", exc)
                else:
                    log.info("cannot reach the registry to lead: %s", exc)
            self.leading.clear()
            await asyncio.sleep(self.poll_s)

    async def _hold(self, conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
        while True:
            if self.leading.is_set():
                # the lock lives as long as this connection: check it is still there
                async with asyncio.timeout(self.poll_s * 5):  # not wait_for: see dispatch.py
                    await conn.execute("SELECT 1")
            else:
                cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (locks.LEADER,))
                row = await cur.fetchone()
                if row is not None and row[0]:
                    self._lead()
            await asyncio.sleep(self.poll_s)

    def _lead(self) -> None:
        self.taken += 1
        self.leading.set()
        log.info("this controller leads: it dispatches and runs the fleet's rounds")
