"""The embedded default time-series store: one SQLite file in WAL mode.

- ``readings`` holds raw points keyed (stream, ts) WITHOUT ROWID: the key is the index, and
  ``INSERT OR IGNORE`` makes writes idempotent.
- ``recent`` takes the points of the open ten-minute buckets first, keyed (bucket, stream, ts),
  and ``compact`` moves each closed bucket into ``readings`` in key order, in slices between
  writes. Why: in ``readings`` every stream with history has a leaf page of its own, so a
  transaction dirtied and wrote one page per stream it touched; in ``recent`` it dirties only
  the current bucket's pages, and each stream's leaf is written once per bucket. A point lives
  in exactly one table: before ``horizon`` (and in the horizon's bucket, for streams the
  current slice already moved) in ``readings``, else in ``recent``. The horizon only moves
  forward, with its slice, in one transaction, and every write reads it again, so two processes
  on one file agree and ``INSERT OR IGNORE`` still finds every earlier copy. Reads take both
  tables and reach ``recent`` bucket by bucket, never scanning it whole.
- ``latest`` is kept by one upsert per stream and write (cheaper than a trigger per reading), so
  the newest value of every stream is one small table scan.
- Rollups: raw points past their retention are added into per-minute and per-hour aggregates and
  deleted in one transaction, so each is rolled exactly once; aggregate queries sum rollups and
  the raw points still kept, which never overlap.
- Several processes may write one file (``STREETPOLE_INGEST_PROCESSES``): rows are built and
  routed before the lock is taken, so they wait for each other only during the statements; a
  writer waits for another (WRITE_WAIT_S) rather than failing.
- One transaction per ingest batch; ``synchronous=NORMAL`` keeps every committed transaction
  across a process crash (an OS crash may lose the last ones; FULL costs throughput). The WAL
  grows ten times SQLite's default before a checkpoint (``wal_autocheckpoint``): a batch dirties
  a page per stream, and the default checkpointed at nearly every commit while ingest waited;
  durability depends on ``synchronous`` only.

Figures: docs/performance.md ("Ingest" and "The store").
"""

from __future__ import annotations

import functools
import itertools
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from controller.opendata.dialects import SQLITE
from controller.opendata.sql import observation_sql
from controller.store.base import (
    BATCH_KEYS_S,
    WINDOW_SECONDS,
    Aggregate,
    Batch,
    ObservationPage,
    ObservationQuery,
    Point,
    QueryTooExpensive,
    StreamInfo,
    StreamKey,
    TimeSeriesStore,
    Window,
    WriteResult,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS streams (
    id INTEGER PRIMARY KEY,
    pole TEXT NOT NULL, node TEXT NOT NULL, src TEXT NOT NULL, q TEXT NOT NULL,
    UNIQUE (pole, node, src, q)
);
CREATE TABLE IF NOT EXISTS readings (
    stream INTEGER NOT NULL, ts INTEGER NOT NULL, v REAL NOT NULL, dur INTEGER, flags TEXT,
    PRIMARY KEY (stream, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS recent (
    bucket INTEGER NOT NULL,
    stream INTEGER NOT NULL, ts INTEGER NOT NULL, v REAL NOT NULL, dur INTEGER, flags TEXT,
    PRIMARY KEY (bucket, stream, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS store_meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS latest (
    stream INTEGER PRIMARY KEY, ts INTEGER NOT NULL, v REAL NOT NULL, dur INTEGER, flags TEXT
);
DROP TRIGGER IF EXISTS readings_latest;
CREATE TABLE IF NOT EXISTS rollup_minute (
    stream INTEGER NOT NULL, bucket INTEGER NOT NULL,
    n INTEGER NOT NULL, sum REAL NOT NULL, min REAL NOT NULL, max REAL NOT NULL,
    PRIMARY KEY (stream, bucket)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_hour (
    stream INTEGER NOT NULL, bucket INTEGER NOT NULL,
    n INTEGER NOT NULL, sum REAL NOT NULL, min REAL NOT NULL, max REAL NOT NULL,
    PRIMARY KEY (stream, bucket)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS batches (
    pole TEXT NOT NULL, node TEXT NOT NULL, boot INTEGER NOT NULL, seq INTEGER NOT NULL,
    received INTEGER NOT NULL,
    PRIMARY KEY (pole, node, boot, seq)
) WITHOUT ROWID;
-- for retention; appended at its end (received is the clock), so it costs writes little
CREATE INDEX IF NOT EXISTS batches_received ON batches (received);
"""

# Retention reaches what is past it stream by stream (one index seek each: streams CROSS JOIN
# readings, stream IN (...)): ``ts < ?`` alone scanned the whole table every hour while holding
# the writer (0.9 s with two hours of 6,000 nodes, growing with the data kept; now 0.3 s, which
# grows with the streams only).
ROLLUP_ADD = """
INSERT INTO {table} (stream, bucket, n, sum, min, max)
SELECT r.stream, r.ts - r.ts % {width}, count(*), sum(r.v), min(r.v), max(r.v)
FROM streams s CROSS JOIN readings r ON r.stream = s.id AND r.ts < ?
GROUP BY r.stream, r.ts - r.ts % {width}
ON CONFLICT (stream, bucket) DO UPDATE SET
    n = n + excluded.n, sum = sum + excluded.sum,
    min = min(min, excluded.min), max = max(max, excluded.max)
"""
BY_STREAM_DELETE = "DELETE FROM {table} WHERE stream IN (SELECT id FROM streams) AND {col} < ?"


# Readings are bound as 4-tuples (flags NULL in the statement) when they have a duration and no
# flags, the usual case, else as 5-tuples: the sqlite3 module looks a None parameter up in its
# adapter registry (two failed attribute lookups) for every reading.
_NO_FLAGS = "(?,?,?,?,NULL)"
VALUES = {4: _NO_FLAGS, 5: "(?,?,?,?,?)"}
VALUES_RECENT = {5: "(?,?,?,?,?,NULL)", 6: "(?,?,?,?,?,?)"}
READINGS_INSERT = "INSERT OR IGNORE INTO readings (stream, ts, v, dur, flags)"
RECENT_INSERT = "INSERT OR IGNORE INTO recent (bucket, stream, ts, v, dur, flags)"
BUCKET = 600  # seconds in a bucket of ``recent``
MOVE_SLICE = 50_000  # points moved at least after a write, while closed buckets wait
_PLAIN_ORDER = re.compile(r"(stream|ts|v|dur|flags) (ASC|DESC)\Z")
# The buckets present in ``recent``, found by one index seek each (a loose index scan), so that
# reads reach its rows by (bucket, stream) without scanning it.
RECENT_BUCKETS = """rb(b) AS (
    SELECT min(bucket) FROM recent
    UNION ALL SELECT (SELECT min(bucket) FROM recent WHERE bucket > rb.b) FROM rb
    WHERE rb.b IS NOT NULL)"""
IN_RECENT_BUCKETS = "bucket IN (SELECT b FROM rb WHERE b IS NOT NULL)"
# Raw points of the streams ``{cond}`` names (SQL over ``stream``), from both tables.
RAW = (
    "SELECT stream, ts, v, dur, flags FROM readings WHERE {cond} UNION ALL"
    " SELECT stream, ts, v, dur, flags FROM recent"
    f" WHERE {IN_RECENT_BUCKETS} AND {{cond}}"
)
LATEST_UPSERT = "INSERT INTO latest (stream, ts, v, dur, flags)"
_UPSERT = (
    " ON CONFLICT (stream) DO UPDATE SET ts = excluded.ts, v = excluded.v,"
    " dur = excluded.dur, flags = excluded.flags WHERE excluded.ts > latest.ts"
)
# Rows per multi-row VALUES statement: one statement step for CHUNK rows instead of one bind,
# step and reset per row through executemany.
CHUNK = 250
WRITE_WAIT_S = 120.0


@functools.lru_cache(maxsize=32)
def _chunk_sql(head: str, values: str, tail: str, rows: int) -> str:
    return f"{head} VALUES {','.join([values] * rows)}{tail}"


def _insert(db: sqlite3.Connection, head: str, values: str, rows: list[Any], tail: str = "") -> int:
    """Insert ``rows`` in order (so of two copies of a row the first is the one kept, as with
    executemany): full chunks of CHUNK rows as one statement each, the rest through
    executemany (one statement text, not one per length). Returns the rows changed."""
    changed = 0
    full = len(rows) - len(rows) % CHUNK
    if full:
        sql = _chunk_sql(head, values, tail, CHUNK)
        for i in range(0, full, CHUNK):
            changed += db.execute(
                sql, list(itertools.chain.from_iterable(rows[i : i + CHUNK]))
            ).rowcount
    if full < len(rows):
        changed += db.executemany(_chunk_sql(head, values, tail, 1), rows[full:]).rowcount
    return changed


def _runs(
    rows: Iterable[tuple[Any, ...]], templates: dict[int, str] = VALUES
) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    """Consecutive rows of one shape with the VALUES template for it, in order."""
    for n, run in itertools.groupby(rows, len):
        yield templates[n], list(run)


def _route(
    rows: list[tuple[Any, ...]], horizon: int, done: int
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Rows for ``recent`` (with their bucket in front) and for ``readings``, in order: see the
    module docstring for the rule."""
    fresh = []
    late = []
    end = horizon + BUCKET
    for row in rows:
        sid, ts = row[0], row[1]
        if ts >= horizon and (sid > done or ts >= end):
            fresh.append((ts - ts % BUCKET, *row))
        else:
            late.append(row)
    return fresh, late


def _newest(
    rows: list[tuple[Any, ...]], into: dict[int, tuple[Any, ...]] | None = None
) -> dict[int, tuple[Any, ...]]:
    """The newest row of each stream (for ``latest``)."""
    newest = {} if into is None else into
    for row in rows:
        seen = newest.get(row[0])
        if seen is None or row[1] > seen[1]:
            newest[row[0]] = row
    return newest


def _new_stream(db: sqlite3.Connection, key: tuple[str, str, str, str]) -> int:
    """The id of a stream not in this process's cache, inside the write transaction: another
    process writing to the same file (ingest in several processes) may have created it."""
    row = db.execute(
        "SELECT id FROM streams WHERE pole = ? AND node = ? AND src = ? AND q = ?", key
    ).fetchone()
    if row is not None:
        return int(row[0])
    cur = db.execute("INSERT INTO streams (pole, node, src, q) VALUES (?, ?, ?, ?)", key)
    return int(cur.lastrowid or 0)


class SqliteStore(TimeSeriesStore):
    def __init__(
        self,
        path: Path,
        retention_raw_days: int = 30,
        retention_minute_days: int = 180,
        retention_hour_days: int = 0,
        horizon: int | None = None,
    ) -> None:
        """``horizon``: where ``recent`` starts, fixed (for tests: 0 sends every point through
        ``recent``; ``compact`` still moves it). By default it follows the clock: the bucket
        before the current one, moved after a write that finds it older, never backwards."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.retention = (retention_raw_days, retention_minute_days, retention_hour_days)
        # Another process's write (ingest in several processes, or an hourly retention run of
        # a large street: about 10 s) is waited for, not failed after SQLite's default 5 s.
        self._db = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None, timeout=WRITE_WAIT_S
        )
        self._lock = threading.Lock()  # one writer at a time; readers get their own connection
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA cache_size=-65536")
        self._db.execute("PRAGMA wal_autocheckpoint=10000")
        self._db.executescript(SCHEMA)
        # keyed by plain (pole, node, src, q) tuples: building and hashing a StreamKey per
        # reading cost a quarter of the write path
        self._ids: dict[tuple[str, str, str, str], int] = {}
        for sid, pole, node, src, q in self._db.execute(
            "SELECT id, pole, node, src, q FROM streams"
        ):
            self._ids[(pole, node, src, q)] = sid
        self._local = threading.local()
        stored = self._db.execute("SELECT v FROM store_meta WHERE k = 'horizon'").fetchone()
        self.horizon = stored[0] if stored else 0
        self._routing = (self.horizon, 0)  # as last read; only a guess until a write reads it
        self._follow_clock = horizon is None
        if horizon is None:
            self.compact(_open_bucket(int(time.time())))
        elif stored is None:
            self._set_horizon(horizon)

    # ---- reads use a connection per thread, so they never wait on the writer (WAL) ----------

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, check_same_thread=False)
            conn.execute("PRAGMA query_only=1")
            self._local.conn = conn
        return conn

    def _stream_id(self, key: StreamKey) -> int | None:
        tkey = (key.pole, key.node, key.src, key.q)
        sid = self._ids.get(tkey)
        if sid is None:
            row = (
                self._reader()
                .execute(
                    "SELECT id FROM streams WHERE pole=? AND node=? AND src=? AND q=?",
                    (key.pole, key.node, key.src, key.q),
                )
                .fetchone()
            )
            if row is not None:
                sid = self._ids[tkey] = row[0]
        return sid

    # ---- writes ---------------------------------------------------------------------------

    def write(self, batches: Iterable[Batch]) -> WriteResult:
        """The rows are built, and routed by the horizon last read, before the write lock is
        taken, and routed again inside only if another process has moved the horizon since:
        with ingest in several processes, only the statements wait for each other."""
        result = WriteResult()
        ids = self._ids
        now = int(time.time())
        # A reading older than raw retention would be rolled up a second time if it were a
        # resend of one already rolled up: refuse it (counted as too_old).
        oldest = now - self.retention[0] * 86400 if self.retention[0] else 0
        too_old = 0
        batch_keys = []
        built: list[tuple[Any, ...]] = []  # (stream, ts, v, dur[, flags])
        unknown: list[tuple[tuple[str, str, str, str], tuple[Any, ...]]] = []  # new streams'
        for b in batches:
            pole, node = b.pole, b.node
            batch_keys.append((pole, node, b.boot, b.seq, now))
            for r in b.readings:
                ts = r["ts"]
                if ts < oldest:
                    too_old += 1
                    continue
                get = r.get
                key = (pole, node, get("src") or "", r["q"])
                sid = ids.get(key)
                flags = get("flags")
                dur = get("dur")
                row: tuple[Any, ...]
                if flags or dur is None:
                    row = (sid, ts, r["v"], dur, ",".join(flags) if flags else None)
                else:  # the usual reading: no None to bind (see _runs)
                    row = (sid, ts, r["v"], dur)
                if sid is None:
                    unknown.append((key, row))
                else:
                    built.append(row)
        routed_by = self._routing
        fresh, rows = _route(built, *routed_by)
        newest = _newest(built)
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                routing = self._read_horizon()
                if routing != routed_by:
                    fresh, rows = _route(built, *routing)
                if unknown:
                    added = []
                    for key, row in unknown:
                        sid = ids.get(key)
                        if sid is None:
                            sid = ids[key] = _new_stream(db, key)
                        added.append((sid, *row[1:]))
                    more_fresh, more_rows = _route(added, *routing)
                    fresh += more_fresh
                    rows += more_rows
                    newest = _newest(added, newest)
                result.batches_resent = len(batch_keys) - _insert(
                    db,
                    "INSERT OR IGNORE INTO batches (pole, node, boot, seq, received)",
                    "(?,?,?,?,?)",
                    batch_keys,
                )
                stored = 0
                for values, run in _runs(fresh, VALUES_RECENT):
                    stored += _insert(db, RECENT_INSERT, values, run)
                for values, run in _runs(rows):
                    stored += _insert(db, READINGS_INSERT, values, run)
                for values, run in _runs(newest.values()):
                    _insert(db, LATEST_UPSERT, values, run, _UPSERT)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                # stream ids created in the rolled-back transaction do not exist
                self._ids = {
                    (p, n, s, q): i
                    for i, p, n, s, q in db.execute("SELECT id, pole, node, src, q FROM streams")
                }
                raise
        points = len(rows) + len(fresh)
        if self._follow_clock and _open_bucket(now) > self.horizon:
            # one slice, twice the write at least, so that the moves keep up
            self.compact(_open_bucket(now), max(MOVE_SLICE, 2 * points))
        result.points = points + too_old
        result.stored = stored
        result.duplicates = points - result.stored
        if too_old:
            result.extra["too_old"] = too_old
        return result

    def compact(self, before: int, limit: int | None = None) -> int:
        """Move the points of ``recent``'s buckets before ``before`` into ``readings``, in key
        order, and the horizon with them; returns the points moved. With ``limit``, one slice
        of about that many points, in its own transaction, so that ingest goes on between
        slices (a ten-minute bucket of 6,000 nodes took 2.3 s in one go)."""
        before -= before % BUCKET
        moved = 0
        while True:
            with self._lock:
                if before <= self.horizon:
                    return moved
                db = self._db
                db.execute("BEGIN IMMEDIATE")
                try:
                    moved += self._move_slice(before, limit or MOVE_SLICE)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            if limit is not None:
                return moved

    def _move_slice(self, before: int, limit: int) -> int:
        """One slice of a move, inside a transaction: the next streams (at least ``limit``
        points, all of a stream's) of the bucket at the horizon, or the rest of it and on to
        the next bucket present."""
        db = self._db
        h, done = self._read_horizon()
        if before <= h:
            return 0
        row = db.execute(
            "SELECT stream FROM recent WHERE bucket = ? AND stream > ?"
            " ORDER BY stream, ts LIMIT 1 OFFSET ?",
            (h, done, limit - 1),
        ).fetchone()
        where = "bucket = ? AND stream > ?" + ("" if row is None else " AND stream <= ?")
        args = (h, done) if row is None else (h, done, row[0])
        n = db.execute(
            "INSERT OR IGNORE INTO readings (stream, ts, v, dur, flags)"
            f" SELECT stream, ts, v, dur, flags FROM recent WHERE {where} ORDER BY stream, ts",
            args,
        ).rowcount
        db.execute(f"DELETE FROM recent WHERE {where}", args)
        if row is not None:
            self._set_horizon(h, row[0])
        else:
            nxt = db.execute("SELECT min(bucket) FROM recent WHERE bucket > ?", (h,)).fetchone()
            self._set_horizon(before if nxt[0] is None else min(nxt[0], before), 0)
        return int(n)

    def _read_horizon(self) -> tuple[int, int]:
        """The horizon and the last stream of its bucket already moved, as stored, inside a
        write transaction: another process writing the same file may have moved them."""
        rows = dict(self._db.execute("SELECT k, v FROM store_meta"))
        self.horizon = rows.get("horizon", 0)
        self._routing = (self.horizon, rows.get("moved", 0))
        return self._routing

    def _set_horizon(self, horizon: int, moved: int = 0) -> None:
        self._db.executemany(
            "INSERT INTO store_meta (k, v) VALUES (?, ?)"
            " ON CONFLICT (k) DO UPDATE SET v = excluded.v",
            (("horizon", horizon), ("moved", moved)),
        )
        self.horizon = horizon
        self._routing = (horizon, moved)  # the next write routes by it (and checks it)

    # ---- queries --------------------------------------------------------------------------

    def streams(self) -> list[StreamKey]:
        rows = self._reader().execute("SELECT pole, node, src, q FROM streams ORDER BY id")
        return [StreamKey(*r) for r in rows]

    def query(
        self, stream: StreamKey, start: int, end: int, limit: int = 10_000, offset: int = 0
    ) -> list[Point]:
        sid = self._stream_id(stream)
        if sid is None:
            return []
        rows = self._reader().execute(
            f"WITH RECURSIVE {RECENT_BUCKETS} SELECT ts, v, dur, flags FROM ("
            + RAW.format(cond="stream = ?1 AND ts >= ?2 AND ts < ?3")
            + ") ORDER BY ts LIMIT ?4 OFFSET ?5",
            (sid, start, end, limit, offset),
        )
        return [
            Point(ts, v, dur, tuple(flags.split(",")) if flags else ())
            for ts, v, dur, flags in rows
        ]

    def latest(self, streams: Iterable[StreamKey] | None = None) -> dict[StreamKey, Point]:
        rows = self._reader().execute(
            "SELECT s.pole, s.node, s.src, s.q, l.ts, l.v, l.dur, l.flags "
            "FROM latest l JOIN streams s ON s.id = l.stream"
        )
        out = {
            StreamKey(p, n, s, q): Point(ts, v, dur, _flags(f))
            for p, n, s, q, ts, v, dur, f in rows
        }
        if streams is not None:
            wanted = set(streams)
            out = {k: v for k, v in out.items() if k in wanted}
        return out

    def latest_by_id(self) -> dict[int, Point]:
        rows = self._reader().execute("SELECT stream, ts, v, dur, flags FROM latest")
        return {sid: Point(ts, v, dur, _flags(f)) for sid, ts, v, dur, f in rows}

    def aggregate(self, stream: StreamKey, start: int, end: int, window: Window) -> list[Aggregate]:
        sid = self._stream_id(stream)
        if sid is None:
            return []
        width = WINDOW_SECONDS[window]
        table = "rollup_minute" if window == "minute" else "rollup_hour"
        raw = RAW.format(cond="stream = ?1 AND ts >= ?2 AND ts < ?3")
        sql = f"""
            WITH RECURSIVE {RECENT_BUCKETS}
            SELECT bucket, sum(n), sum(s), min(lo), max(hi) FROM (
                SELECT ts - ts % {width} AS bucket, count(*) AS n, sum(v) AS s,
                       min(v) AS lo, max(v) AS hi
                FROM ({raw}) GROUP BY 1
                UNION ALL
                SELECT bucket - bucket % {width}, sum(n), sum(sum), min(min), max(max)
                FROM {table} WHERE stream = ?1 AND bucket >= ?2 AND bucket < ?3 GROUP BY 1
            ) GROUP BY bucket ORDER BY bucket
        """
        lo = start - start % width
        rows = self._reader().execute(sql, (sid, lo, end))
        return [Aggregate(b, n, s / n, mn, mx) for b, n, s, mn, mx in rows if n]

    # ---- open data (SensorThings) ------------------------------------------------------------

    def stream_index(self) -> dict[StreamKey, StreamInfo]:
        rows = self._reader().execute(
            f"WITH RECURSIVE {RECENT_BUCKETS} SELECT s.id, s.pole, s.node, s.src, s.q,"
            " (SELECT min(ts) FROM readings r WHERE r.stream = s.id),"
            f" (SELECT min(ts) FROM recent WHERE {IN_RECENT_BUCKETS} AND stream = s.id),"
            " (SELECT min(bucket) FROM rollup_minute m WHERE m.stream = s.id),"
            " (SELECT min(bucket) FROM rollup_hour h WHERE h.stream = s.id),"
            " l.ts FROM streams s LEFT JOIN latest l ON l.stream = s.id"
        )
        out = {}
        for sid, p, n, src, q, r0, c0, m0, h0, last in rows:
            firsts = [t for t in (r0, c0, m0, h0) if t is not None]
            out[StreamKey(p, n, src, q)] = StreamInfo(sid, min(firsts) if firsts else None, last)
        return out

    def observations(self, q: ObservationQuery) -> ObservationPage:
        counted = set(q.counted)
        plain = ",".join(str(int(s)) for s in q.streams if s not in counted)
        summed = ",".join(str(int(s)) for s in q.streams if s in counted)
        if not plain and not summed:
            return ObservationPage([], 0 if q.count else None)
        cond, cond_params, order, order_params = observation_sql(SQLITE, q.filter, q.orderby)
        where = f" AND ({cond})" if cond else ""
        params: tuple[Any, ...] = tuple(cond_params)
        if not summed and all(_PLAIN_ORDER.match(o) for o in order):
            # each table filtered and ordered on its own, then merged: a page of the newest
            # points of a stream reads that page, not the stream
            sql = RAW.format(cond=f"stream IN ({plain}){where}")
            params = (*params, *params)
        else:
            w = int(q.count_window)
            parts = []
            if summed:
                parts.append(
                    "SELECT stream, bts AS ts, v, dur, flags FROM (SELECT stream,"
                    f" ((ts - 1) / {w} + 1) * {w} AS bts, sum(v) AS v, {w} AS dur, NULL AS flags"
                    f" FROM ({RAW.format(cond=f'stream IN ({summed})')}) GROUP BY 1, 2)"
                    f" WHERE bts <= {int(q.until)}"
                )
            if plain:
                parts.append(RAW.format(cond=f"stream IN ({plain})"))
            source = "(" + " UNION ALL ".join(parts) + ")"
            sql = f"SELECT stream, ts, v, dur, flags FROM {source} WHERE {cond or '1'}"
        sql = f"WITH RECURSIVE {RECENT_BUCKETS} {sql}"
        conn = self._reader()
        deadline = time.monotonic() + q.budget_ms / 1000

        def too_long() -> int:
            return int(time.monotonic() > deadline)

        conn.set_progress_handler(too_long, 20_000)
        try:
            rows = conn.execute(
                f"{sql} ORDER BY {', '.join(order)} LIMIT ? OFFSET ?",
                (*params, *order_params, q.limit, q.offset),
            ).fetchall()
            total = None
            if q.count:
                total = conn.execute(f"SELECT count(*) FROM ({sql})", params).fetchone()[0]
        except sqlite3.OperationalError as e:
            if "interrupted" in str(e):
                raise QueryTooExpensive(f"query ran past {q.budget_ms} ms") from e
            raise
        finally:
            conn.set_progress_handler(None, 0)
        return ObservationPage(rows, total)

    # ---- retention --------------------------------------------------------------------------

    def apply_retention(self, now: int) -> dict[str, int]:
        raw_days, minute_days, hour_days = self.retention
        counts: dict[str, int] = {}
        if raw_days:  # what is rolled up and deleted below must all be in readings
            self.compact(now - raw_days * 86400 + BUCKET)
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                if raw_days:
                    cutoff = now - raw_days * 86400
                    db.execute(ROLLUP_ADD.format(table="rollup_minute", width=60), (cutoff,))
                    db.execute(ROLLUP_ADD.format(table="rollup_hour", width=3600), (cutoff,))
                    counts["raw_deleted"] = db.execute(
                        BY_STREAM_DELETE.format(table="readings", col="ts"), (cutoff,)
                    ).rowcount
                counts["batch_keys_deleted"] = db.execute(
                    "DELETE FROM batches WHERE received < ?", (now - BATCH_KEYS_S,)
                ).rowcount
                if minute_days:
                    counts["minute_deleted"] = db.execute(
                        BY_STREAM_DELETE.format(table="rollup_minute", col="bucket"),
                        (now - minute_days * 86400,),
                    ).rowcount
                if hour_days:
                    counts["hour_deleted"] = db.execute(
                        BY_STREAM_DELETE.format(table="rollup_hour", col="bucket"),
                        (now - hour_days * 86400,),
                    ).rowcount
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return counts

    def close(self) -> None:
        self._db.close()


def _open_bucket(now: int) -> int:
    """Where ``recent`` starts at ``now``: the bucket before the current one, so that points
    a minute late still go there."""
    return now - now % BUCKET - BUCKET


def _flags(text: str | None) -> tuple[str, ...]:
    return tuple(text.split(",")) if text else ()
