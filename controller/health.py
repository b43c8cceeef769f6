"""Readiness: what /readyz reports, each check with the reason it fails.

- registry: intact at start (SQLite ``quick_check``), writable now (a write lock taken and given
  back on a connection of its own, unless this process's own writer has it, which is watched by
  how long it holds it), and its last failed write since (disk full, read-only file).
- store: intact at start and the ingest's last write error (cleared by its next write).
- disk: free space where the data lives.
- broker: the ingest connected.

The probe runs in a thread of its own, so a wedged registry turns readiness red instead of
stalling it. Only the free-space figure is fresh on every call; the rest is as recent as the
last probe (at most ``PROBE_EVERY_S`` old).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from controller.registry.db import BUSY_TIMEOUT_S, Registry, quick_check
from controller.settings import Settings

PROBE_EVERY_S = 1.0
PROBE_TIMEOUT_S = 2.0


def integrity_at_start(settings: Settings, registry: Registry) -> dict[str, str]:
    """``quick_check`` of the SQLite files the controller opens (problems only)."""
    out: dict[str, str] = {}
    files = {"registry": registry.path}
    if settings.store == "sqlite":
        files["store"] = settings.database_path
    for name, path in files.items():
        if path is not None and path.exists():
            problem = quick_check(path)
            if problem is not None:
                out[name] = f"{path.name} failed its integrity check: {problem}"
    return out


def write_probe(path: Path, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """Take the database's write lock and give it back at once; None when that worked."""
    try:
        db = sqlite3.connect(path, timeout=timeout_s, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
        finally:
            db.close()
    except sqlite3.OperationalError as e:
        if "locked" in str(e) or "busy" in str(e):
            return f"write lock held by another connection for over {timeout_s:.0f} s"
        return str(e)
    return None


class Readiness:
    def __init__(self, settings: Settings, registry: Registry, at_start: dict[str, str]) -> None:
        self.settings = settings
        self.registry = registry
        self.at_start = at_start
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="readyz")
        self._probed_at = 0.0
        self._probe: str | None = None
        self._running: asyncio.Future[str | None] | None = None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def registry_problem(self) -> str | None:
        if "registry" in self.at_start:
            return self.at_start["registry"]
        lock = self.registry.write_lock
        if lock is not None and lock.held_for() > BUSY_TIMEOUT_S:
            return f"write lock held by this controller for {lock.held_for():.0f} s"
        if self.registry.path is not None and (lock is None or lock.held_for() == 0.0):
            if time.monotonic() - self._probed_at > PROBE_EVERY_S:
                if self._running is None or self._running.done():
                    loop = asyncio.get_running_loop()
                    self._running = loop.run_in_executor(
                        self._pool, write_probe, self.registry.path
                    )
                try:  # asyncio.timeout: 3.11's wait_for can swallow a cancel
                    async with asyncio.timeout(PROBE_TIMEOUT_S + 0.5):
                        self._probe = await asyncio.shield(self._running)
                except TimeoutError:
                    self._probe = "the write probe did not come back"
                self._probed_at = time.monotonic()
            if self._probe is not None:
                return self._probe
            last = self.registry.last_error
            if last is not None and ("locked" in last or "busy" in last):
                return None  # the lock that stopped that write is free again
        return self.registry.last_error

    def disk_problem(self) -> str | None:
        need = self.settings.min_free_mb * 1024 * 1024
        try:
            st = os.statvfs(self.settings.data_dir)
        except OSError as e:
            return f"data folder: {e}"
        free = st.f_bavail * st.f_frsize
        if free < need:
            return (
                f"{self.settings.data_dir}: {free // (1024 * 1024)} MiB free, "
                f"below {self.settings.min_free_mb} MiB"
            )
        return None

    def store_problem(self, ingest_write_error: str | None) -> str | None:
        if "store" in self.at_start:
            return self.at_start["store"]
        if ingest_write_error is not None:
            return f"ingest's last write failed: {ingest_write_error}"
        return None
