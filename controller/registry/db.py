"""The registry database: engine, sessions and migrations (SQLAlchemy 2, Alembic).

SQLite is the embedded default (one file beside the time series); PostgreSQL is the choice past
one machine, and the same models and migrations run on both (the tests run them on both). The
schema is only ever changed by Alembic migrations (``streetpole migrate``, also run at start), so
an operator upgrading the controller never edits tables by hand.

On SQLite one connection writes at a time. SQLite's own wait for that lock polls with sleeps of
up to 100 ms, so under steady writes a waiter can lose every race until its timeout: the
controller's routes, ingest and fleet loop starved each other into "database is locked". So
writers of this process queue on ``WriteLock`` (a plain lock: waiters are woken, not polling),
taken by a connection's first write statement and given back at its commit or rollback, and
the SQLite busy timeout is left for other processes (the CLI, ingest children).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DatabaseError, IntegrityError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# How long a writer waits for the write lock before the request is refused (503, retry).
BUSY_TIMEOUT_S = 5.0
# A request needs a pooled connection for its transaction; the API admits at most this many
# at once (controller/api/admission.py) and keeps the rest for ingest, fleet and open data.
POOL_SIZE = 20
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
# deadlock_detected, serialization_failure: the transaction may simply be run again
RETRY_SQLSTATES = ("40P01", "40001")
# Unique indexes whose violation means another transaction did the same first: run again, the
# work then finds its row (models.Alarm)
RETRY_UNIQUE = ("alarms_open_once",)
T = TypeVar("T")


def _retryable(e: DatabaseError) -> bool:
    if getattr(e.orig, "sqlstate", None) in RETRY_SQLSTATES:
        return True
    # PostgreSQL: 'violates unique constraint "alarms_open_once"'; SQLite names no index
    # of an expression, but its columns: "UNIQUE constraint failed: index 'alarms_open_once'"
    return isinstance(e, IntegrityError) and any(name in str(e.orig) for name in RETRY_UNIQUE)


class Base(DeclarativeBase):
    pass


class RegistryBusy(Exception):
    """The registry's write lock stayed taken past the busy timeout: try again later."""


class WriteLock:
    """One writing transaction at a time in this process, in the order they asked."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self.held_since: float | None = None

    def acquire(self) -> None:
        if not self._lock.acquire(timeout=self.timeout_s):
            since = self.held_since
            held = f" (held for {time.monotonic() - since:.1f} s)" if since is not None else ""
            raise RegistryBusy(f"registry busy: another write holds the lock{held}")
        self.held_since = time.monotonic()

    def release(self) -> None:
        self.held_since = None
        self._lock.release()

    def held_for(self) -> float:
        since = self.held_since
        return 0.0 if since is None else time.monotonic() - since


def _serialise_writes(engine: Engine, lock: WriteLock) -> None:
    key = "streetpole_writing"

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, _cur: Any, statement: str, *_a: Any) -> None:
        if not conn.info.get(key) and statement.lstrip()[:7].upper().startswith(_WRITES):
            lock.acquire()
            conn.info[key] = True

    def _done(info: dict[str, Any]) -> None:
        if info.pop(key, False):
            lock.release()

    event.listen(engine, "commit", lambda conn: _done(conn.info))
    event.listen(engine, "rollback", lambda conn: _done(conn.info))
    # a connection given back to the pool without either (closed session, lost thread)
    event.listen(engine.pool, "checkin", lambda _dbapi, record: _done(record.info))


def make_engine(url: str, busy_timeout_s: float = BUSY_TIMEOUT_S) -> Engine:
    """An engine with SQLite set up for a web server: WAL, foreign keys on, waits on locks."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": busy_timeout_s},
            pool_size=POOL_SIZE,
            max_overflow=0,
            pool_timeout=busy_timeout_s,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(
        url, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=0, pool_timeout=busy_timeout_s
    )


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (idempotent)."""
    command.upgrade(alembic_config(url), revision)


def sqlite_path(url: str) -> Path | None:
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def quick_check(path: Path, timeout_s: float = 5.0) -> str | None:
    """SQLite's ``quick_check`` of a database file: None when intact, else the first problem."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout_s)
        try:
            rows = db.execute("PRAGMA quick_check(5)").fetchall()
        finally:
            db.close()
    except sqlite3.Error as e:
        return str(e)
    first = str(rows[0][0]) if rows else "no answer"
    return None if first == "ok" else first


def error_reason(e: BaseException) -> str:
    """One line saying what went wrong with the database (no SQL, no traceback)."""
    orig = getattr(e, "orig", None)
    return str(orig or e).splitlines()[0] if str(orig or e) else type(e).__name__


def _mark_written(s: Session, _ctx: Any) -> None:
    s.info["wrote"] = True


class Registry:
    """Engine and session factory, opened once per process."""

    def __init__(
        self, url: str, run_migrations: bool = True, busy_timeout_s: float = BUSY_TIMEOUT_S
    ) -> None:
        self.url = url
        self.path = sqlite_path(url)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        if run_migrations:
            migrate(url)
        self.engine = make_engine(url, busy_timeout_s)
        self.write_lock: WriteLock | None = None
        if self.path is not None:
            self.write_lock = WriteLock(busy_timeout_s)
            _serialise_writes(self.engine, self.write_lock)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        event.listen(self.sessions, "after_flush", _mark_written)
        # the last failed database operation of a session, until one commits again: readiness
        self.last_error: str | None = None

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on any error."""
        with self.sessions() as s:
            try:
                yield s
                s.commit()
            except BaseException as e:
                s.rollback()
                if isinstance(e, RegistryBusy) or (
                    isinstance(e, DatabaseError) and not isinstance(e, IntegrityError)
                ):
                    self.last_error = error_reason(e)
                raise
            if s.info.get("wrote"):
                self.last_error = None

    def retrying(self, work: Callable[[Session], T], attempts: int = 3) -> T:
        """``work`` in a session of its own, run again when PostgreSQL chose it to give way in
        a deadlock or a serialisation conflict (controllers sharing the registry update the
        same nodes' rows from their own ingest; the other transaction goes through), or when
        another transaction inserted the row it was about to (RETRY_UNIQUE)."""
        for attempt in range(attempts):
            try:
                with self.session() as db:
                    return work(db)
            except DatabaseError as e:
                if not _retryable(e) or attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.engine.dispose()
