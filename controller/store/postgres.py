"""The PostgreSQL time-series store, for a city on more than one machine (issue #23).

Schema and where each point lives: controller/store/pg_schema.py. In short, new points are raw
rows in hourly partitions of ``readings``; an hour that closed more than ``compact_after_s``
ago is compacted into one row per stream with arrays (``readings_packed``, daily partitions),
and its raw partition dropped; retention rolls whole days up into per-minute and per-hour
aggregates and drops their partitions.

- Writes: one transaction per ingest batch. A batch already stored (pole, node, boot, seq) is
  skipped whole; the readings of the others are grouped by node and time into rows, sent with
  COPY (text: one f-string a row is cheaper in Python than psycopg's row formatting) into a
  temporary staging table and inserted from there with ON CONFLICT DO NOTHING on (dev, ts); a
  row already there (a partly overlapping batch) is merged point by point, and a point of an
  hour already compacted is looked for in its packed row first, so nothing is stored twice.
  The newest point per stream is upserted into ``latest``. The write returns after COMMIT (the
  server's ``synchronous_commit``, on by default, decides durability), and only then does
  ingest acknowledge.
- Several writers (processes or machines): stream ids come from INSERT ... ON CONFLICT DO
  NOTHING, committed before the write; partitions are created under an advisory lock; writers
  hold an advisory lock shared while compaction and retention hold it exclusively, so a raw
  partition is never dropped under a write. A write that finds its partition gone (another
  controller compacted it) or that deadlocks with another over the same keys is retried.
- Why compaction: a raw row per point, or even per message, costs PostgreSQL several times
  the bytes of a packed hour (tuple headers, alignment, item pointers, index entries):
  docs/performance.md, "PostgreSQL store".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg import sql

from controller.store import pg_observations
from controller.store.base import (
    BATCH_KEYS_S,
    WINDOW_SECONDS,
    Aggregate,
    Batch,
    ObservationPage,
    ObservationQuery,
    Point,
    StreamInfo,
    StreamKey,
    TimeSeriesStore,
    Window,
    WriteResult,
)
from controller.store.pg_schema import (
    COMPACT_LOCK,
    DAY,
    HOUR,
    PARTITION_LOCK,
    RAW_POINTS,
    SCHEMA,
    SCHEMA_LOCK,
    SCHEMA_VERSION,
    packed_partition,
    raw_partition,
)

STAGING = """
CREATE TEMP TABLE IF NOT EXISTS staging (
    i integer, dev integer, ts bigint, streams integer[], v double precision[], dur integer[],
    flags text[]
) ON COMMIT DELETE ROWS
"""
COPY_STAGING = "COPY staging (i, dev, ts, streams, v, dur, flags) FROM STDIN"
_NULL = "\\N"  # NULL in COPY's text format
# The rows a write inserted come back only when some were not (then Python merges those).
INSERT_RAW = """
INSERT INTO readings (dev, ts, streams, v, dur, flags)
SELECT dev, ts, streams, v, dur, flags FROM staging
ON CONFLICT DO NOTHING RETURNING dev, ts
"""
# The newest point of each stream in a write, found in Python while the rows are at hand (the
# server's DISTINCT ON sort over every point took more of its time than inserting the rows).
UPSERT_LATEST = """
INSERT INTO latest (stream, ts, v, dur, flags)
SELECT * FROM unnest(%s::int[], %s::bigint[], %s::float8[], %s::int[], %s::text[])
ORDER BY 1
ON CONFLICT (stream) DO UPDATE SET ts = excluded.ts, v = excluded.v, dur = excluded.dur,
    flags = excluded.flags
WHERE excluded.ts > latest.ts
"""
INSERT_BATCHES = """
INSERT INTO batches (boot, seq, dev, received)
SELECT boot, seq, dev, %s FROM unnest(%s::int[], %s::bigint[], %s::bigint[]) AS b(dev, boot, seq)
ON CONFLICT DO NOTHING RETURNING dev, boot, seq
"""
WRITE_LOCK = (
    "SELECT pg_advisory_xact_lock_shared(%s),"
    " coalesce((SELECT max(bucket) FROM packed_hours), -%s) + %s"
)
# One hour of raw rows into packed rows; when the hour was compacted before (points came
# late), its packed rows are unpacked and merged in.
PACK = """
INSERT INTO readings_packed AS p (stream, bucket, n, vsum, vmin, vmax, ts_off, v, dur, flags)
SELECT stream, {h}, count(*), sum(v), min(v), max(v),
       array_agg((ts - {h})::smallint ORDER BY ts), array_agg(v ORDER BY ts),
       array_agg(dur ORDER BY ts),
       CASE WHEN count(flags) > 0 THEN array_agg(flags ORDER BY ts) END
FROM ({source}) x GROUP BY stream
ON CONFLICT (stream, bucket) DO UPDATE SET n = excluded.n, vsum = excluded.vsum,
    vmin = excluded.vmin, vmax = excluded.vmax, ts_off = excluded.ts_off, v = excluded.v,
    dur = excluded.dur, flags = excluded.flags
"""
RAW_OF_HOUR = """
SELECT u.stream, r.ts, u.v, u.dur, u.flags
FROM {raw} r, unnest(r.streams, r.v, r.dur, r.flags) AS u(stream, v, dur, flags)
"""
PACK_MERGE_SOURCE = (
    RAW_OF_HOUR
    + """
UNION ALL
SELECT p.stream, p.bucket + u.ts_off, u.v, u.dur, u.flags
FROM readings_packed p, unnest(p.ts_off, p.v, p.dur, p.flags) AS u(ts_off, v, dur, flags)
WHERE p.bucket = {h}
  AND p.stream IN (SELECT DISTINCT u.stream FROM {raw} r, unnest(r.streams) AS u(stream))
"""
)
ROLLUP_MINUTE = """
INSERT INTO rollup_minute AS r (stream, bucket, n, sum, min, max)
SELECT p.stream, p.bucket + u.ts_off - mod(u.ts_off, 60), count(*), sum(u.v), min(u.v), max(u.v)
FROM {part} p, unnest(p.ts_off, p.v) AS u(ts_off, v)
GROUP BY 1, 2
ON CONFLICT (stream, bucket) DO UPDATE SET n = r.n + excluded.n, sum = r.sum + excluded.sum,
    min = least(r.min, excluded.min), max = greatest(r.max, excluded.max)
"""
ROLLUP_HOUR = """
INSERT INTO rollup_hour AS r (stream, bucket, n, sum, min, max)
SELECT stream, bucket, n, vsum, vmin, vmax FROM {part}
ON CONFLICT (stream, bucket) DO UPDATE SET n = r.n + excluded.n, sum = r.sum + excluded.sum,
    min = least(r.min, excluded.min), max = greatest(r.max, excluded.max)
"""
# raw rows of the node of stream %(s)s with %(a)s <= ts < %(b)s
RCOND = "r.dev = (SELECT dev FROM streams WHERE id = %(s)s) AND r.ts >= %(a)s AND r.ts < %(b)s"
AHEAD_HOURS = 3  # raw partitions created ahead of the clock
RETRIES = 5


def libpq_url(url: str) -> str:
    """A libpq connection string from a store URL; SQLAlchemy's ``postgresql+psycopg://`` (the
    registry's spelling) is accepted too, so one database URL can serve both."""
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def _hour(ts: int) -> int:
    return ts - ts % HOUR


class PostgresStore(TimeSeriesStore):
    def __init__(
        self,
        url: str,
        retention_raw_days: int = 30,
        retention_minute_days: int = 180,
        retention_hour_days: int = 0,
        compact_after_s: int = 2 * HOUR,
    ) -> None:
        """``compact_after_s``: an hour is compacted (by ``apply_retention``, which the
        controller runs hourly, or ``compact``) once it ended this long ago; points that come
        later are merged into its packed rows, at a higher cost."""
        self.url = libpq_url(url)
        self.retention = (retention_raw_days, retention_minute_days, retention_hour_days)
        self.compact_after_s = compact_after_s
        self._lock = threading.Lock()  # one write at a time on the writer connection
        self._local = threading.local()  # a reader connection per thread
        self._db = self._connect()
        with self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            # only when missing: CREATE INDEX IF NOT EXISTS locks its table before it looks, and
            # a controller starting beside one that ingests deadlocked with its writes
            if self._schema_version() != SCHEMA_VERSION:
                self._db.execute(SCHEMA)
                self._db.execute(
                    "INSERT INTO store_meta (k, v) VALUES ('schema_version', %s)"
                    " ON CONFLICT (k) DO NOTHING",
                    (SCHEMA_VERSION,),
                )
        # keyed by plain tuples, as in the SQLite store: cheaper per reading than StreamKey
        self._ids: dict[tuple[str, str, str, str], int] = {}
        self._devs: dict[tuple[str, str], int] = {}  # (pole, node): devices.id
        self._hours: set[int] = set()  # raw partitions known to exist
        self._days: set[int] = set()  # packed partitions known to exist
        self._load_ids()
        self._load_partitions()

    def _schema_version(self) -> int | None:
        row = self._db.execute("SELECT to_regclass('store_meta') IS NOT NULL").fetchone()
        if row is None or not row[0]:
            return None
        found = self._db.execute("SELECT v FROM store_meta WHERE k = 'schema_version'").fetchone()
        return None if found is None else int(found[0])

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.url, autocommit=True)
        conn.execute(STAGING)
        return conn

    def _writer(self) -> psycopg.Connection[Any]:
        """The writer connection, opened again after the server closed it (a restart)."""
        if self._db.closed or self._db.broken:
            self._db = self._connect()
        return self._db

    def writer_backend_pid(self) -> int:
        """The server process that runs this store's writes (benchmarks measure its CPU)."""
        return int(self._writer().info.backend_pid)

    def _reader(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            conn = psycopg.connect(self.url, autocommit=True)
            self._local.conn = conn
        return conn

    def _read(self, query: Any, params: Any = None) -> list[Any]:
        """Rows of a read, asked again once on a new connection when the server had closed
        this thread's (a restart, a failover)."""
        conn = self._reader()
        try:
            return conn.execute(query, params).fetchall()
        except psycopg.errors.DeadlockDetected:
            # a read that met compaction dropping a partition (another controller's, or this
            # one's retention): the server chose the read to give way; once more finds the
            # packed rows
            return conn.execute(query, params).fetchall()
        except psycopg.OperationalError:
            if not conn.broken:
                raise
            return self._reader().execute(query, params).fetchall()

    def _load_ids(self) -> None:
        for sid, dev, pole, node, src, q in self._writer().execute(
            "SELECT id, dev, pole, node, src, q FROM streams"
        ):
            self._ids[(pole, node, src, q)] = sid
            self._devs[(pole, node)] = dev

    def _load_partitions(self) -> None:
        rows = self._writer().execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent IN ('readings'::regclass, 'readings_packed'::regclass)"
        )
        self._hours.clear()
        self._days.clear()
        for (name,) in rows:
            if name.startswith("readings_packed_d"):
                self._days.add(int(name[len("readings_packed_d") :]))
            elif name.startswith("readings_h"):
                self._hours.add(int(name[len("readings_h") :]))

    # ---- partitions ---------------------------------------------------------------------

    def _ensure_hours(self, hours: Iterable[int]) -> None:
        """Raw partitions for ``hours`` (each an hour's start), created in their own
        transaction under PARTITION_LOCK: two controllers may want the same one at once."""
        missing = sorted(set(hours) - self._hours)
        if not missing:
            return
        db = self._writer()
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK,))
            for h in missing:
                db.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {} PARTITION OF readings"
                        " FOR VALUES FROM ({}) TO ({})"
                    ).format(sql.Identifier(raw_partition(h)), h, h + HOUR)
                )
        self._hours.update(missing)

    def _ensure_day(self, db: psycopg.Connection[Any], day: int) -> None:
        """A packed partition, inside the caller's transaction (which holds COMPACT_LOCK)."""
        if day in self._days:
            return
        db.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} PARTITION OF readings_packed"
                " FOR VALUES FROM ({}) TO ({})"
            ).format(sql.Identifier(packed_partition(day)), day, day + DAY)
        )
        self._days.add(day)

    # ---- writes ---------------------------------------------------------------------------

    def _new_streams(
        self, keys: Iterable[tuple[str, str, str, str]], nodes: Iterable[tuple[str, str]] = ()
    ) -> None:
        """Ids for streams and nodes not in this process's cache, committed before the write,
        so that two writers creating one at once both get the id the first committed."""
        keys = sorted(set(keys))
        db = self._writer()
        nodes = sorted({(p, n) for p, n, _, _ in keys} | set(nodes))
        cols = [list(c) for c in zip(*nodes, strict=True)]
        db.execute(
            "INSERT INTO devices (pole, node) SELECT * FROM unnest(%s::text[], %s::text[])"
            " ON CONFLICT DO NOTHING",
            cols,
        )
        devs = {
            (p, n): d
            for d, p, n in db.execute(
                "SELECT d.id, d.pole, d.node FROM devices d"
                " JOIN unnest(%s::text[], %s::text[]) AS k(pole, node) USING (pole, node)",
                cols,
            )
        }
        self._devs.update(devs)
        if not keys:
            return
        cols = [list(c) for c in zip(*keys, strict=True)]
        db.execute(
            "INSERT INTO streams (pole, node, src, q, dev)"
            " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::int[])"
            " ON CONFLICT DO NOTHING",
            [*cols, [devs[(p, n)] for p, n, _, _ in keys]],
        )
        for sid, dev, pole, node, src, q in db.execute(
            "SELECT s.id, s.dev, s.pole, s.node, s.src, s.q FROM streams s"
            " JOIN unnest(%s::text[], %s::text[], %s::text[], %s::text[]) AS k(pole, node, src, q)"
            " USING (pole, node, src, q)",
            cols,
        ):
            self._ids[(pole, node, src, q)] = sid
            self._devs[(pole, node)] = dev

    def write(self, batches: Iterable[Batch]) -> WriteResult:
        """The readings of each batch are grouped by time into rows (dev, ts, arrays) here,
        before the lock; in the transaction, the batches already stored are dropped whole, the
        rest go by COPY into ``staging`` and on into ``readings``; a row whose (dev, ts) is
        there already (a partly overlapping batch) is merged point by point, and so are points
        of an hour already compacted (looked for in its packed rows)."""
        result = WriteResult()
        now = int(time.time())
        # As in the SQLite store: a reading older than raw retention may be a resend of one
        # already rolled up; refused and counted, never rolled up twice.
        oldest = now - self.retention[0] * 86400 if self.retention[0] else 0
        too_old = points = 0
        ids, devs = self._ids, self._devs
        per_batch: list[tuple[tuple[str, str, int, int], list[Group], int]] = []
        unknown: list[tuple[str, str, str, str]] = []
        for b in batches:
            pole, node = b.pole, b.node
            groups: dict[int, Group] = {}
            n = 0
            for r in b.readings:
                ts = r["ts"]
                if ts < oldest:
                    too_old += 1
                    continue
                get = r.get
                key = (pole, node, get("src") or "", r["q"])
                sid = ids.get(key)
                if sid is None:
                    unknown.append(key)
                    sid = key  # type: ignore[assignment]  # an id once the stream exists
                g = groups.get(ts)
                if g is None:
                    g = groups[ts] = Group(devs.get((pole, node), (pole, node)), ts)
                g.add(sid, r["v"], get("dur"), get("flags"))
                n += 1
            points += n
            per_batch.append(((pole, node, b.boot, b.seq), list(groups.values()), n))
        with self._lock:
            nodes = {(k[0], k[1]) for k, _, _ in per_batch if (k[0], k[1]) not in devs}
            if unknown or nodes:
                self._new_streams(unknown, nodes)
                for _, groups_, _ in per_batch:
                    for g in groups_:
                        g.resolve(ids, devs)
            for attempt in range(RETRIES):
                self._ensure_hours({g.ts - g.ts % HOUR for _, gs, _ in per_batch for g in gs})
                try:
                    resent, stored = self._write_groups(per_batch, now)
                    break
                except psycopg.errors.CheckViolation:
                    # "no partition of relation found": another controller compacted (and
                    # dropped) one since this one last looked
                    self._load_partitions()
                except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                    if attempt == RETRIES - 1:
                        raise
                except psycopg.OperationalError:
                    # the server closed the connection (a restart): once more on a new one;
                    # if the COMMIT had gone through, the write is idempotent
                    if not self._db.broken or attempt == RETRIES - 1:
                        raise
            else:
                raise RuntimeError("no partition for the write's points after retries")
        result.points = points + too_old
        result.stored = stored
        result.duplicates = points - stored
        result.batches_resent = resent
        if too_old:
            result.extra["too_old"] = too_old
        return result

    def _write_groups(
        self, per_batch: list[tuple[tuple[str, str, int, int], list[Group], int]], now: int
    ) -> tuple[int, int]:
        """One transaction: batches, rows, latest. Returns (batches resent, points stored)."""
        db = self._writer()
        with db.transaction(), db.cursor() as cur:
            cur.execute(WRITE_LOCK, (COMPACT_LOCK, HOUR, HOUR))
            packed_until = cur.fetchone()[1]  # type: ignore[index]
            first: dict[tuple[int, int, int], int] = {}  # a batch twice in one write
            devs = self._devs
            for i, ((pole, node, boot, seq), _, _) in enumerate(per_batch):
                first.setdefault((devs[(pole, node)], boot, seq), i)
            keys = list(first)
            cur.execute(INSERT_BATCHES, (now, *(list(c) for c in zip(*keys, strict=True))))
            resent = len(per_batch) - cur.rowcount
            new = set(first.values())
            if cur.rowcount < len(keys):  # some stored before: only the returned ones are new
                returned = {tuple(k) for k in cur.fetchall()}
                new = {i for k, i in first.items() if k in returned}
            # rows of this write by (dev, ts): two batches of one node and time are merged
            rows: dict[tuple[int, int], Group] = {}
            for i, (_, groups, _) in enumerate(per_batch):
                if i not in new:
                    continue
                for g in groups:
                    seen = rows.get((g.dev, g.ts))
                    if seen is None:
                        rows[(g.dev, g.ts)] = g
                    else:
                        seen.merge(g)
            late = [g for g in rows.values() if g.ts < packed_until]
            if late:  # points of an hour compacted already: not stored twice
                self._drop_packed(cur, late)
            staged = [g for g in rows.values() if g.sids]
            stored = 0
            if staged:
                with cur.copy(COPY_STAGING) as copy:
                    copy.write("".join(g.line(i) for i, g in enumerate(staged)))
                cur.execute(INSERT_RAW)
                if cur.rowcount == len(staged):
                    stored = sum(len(g.sids) for g in staged)
                else:
                    inserted = {tuple(k) for k in cur.fetchall()}
                    for g in staged:
                        if (g.dev, g.ts) in inserted:
                            stored += len(g.sids)
                        else:
                            stored += self._merge_row(cur, g)
                cur.execute(UPSERT_LATEST, _newest(staged))
        return resent, stored

    def _drop_packed(self, cur: psycopg.Cursor[Any], late: list[Group]) -> None:
        """Drop from ``late`` (rows of hours compacted before) the points their packed rows
        hold already: one statement for them all (a node's backlog may be hours of rows)."""
        cols: tuple[list[int], list[int], list[int], list[int]] = ([], [], [], [])
        for i, g in enumerate(late):
            h = g.ts - g.ts % HOUR
            for sid in g.sids:
                cols[0].append(i)
                cols[1].append(sid)
                cols[2].append(h)
                cols[3].append(g.ts - h)
        cur.execute(
            "SELECT x.i, x.stream FROM unnest(%s::int[], %s::int[], %s::bigint[], %s::int[])"
            " AS x(i, stream, bucket, off)"
            " JOIN readings_packed p ON p.stream = x.stream AND p.bucket = x.bucket"
            " WHERE x.off = ANY (p.ts_off)",
            cols,
        )
        found: dict[int, set[int]] = {}
        for i, sid in cur.fetchall():
            found.setdefault(i, set()).add(sid)
        for i, sids in found.items():
            late[i].drop(sids)

    def _merge_row(self, cur: psycopg.Cursor[Any], g: Group) -> int:
        """The points of ``g`` that its (dev, ts)'s stored row lacks, added to it; returns how
        many. Rare (a batch that partly overlaps a stored one), so done row by row."""
        cur.execute(
            "SELECT streams, v, dur, flags FROM readings WHERE dev = %s AND ts = %s FOR UPDATE",
            (g.dev, g.ts),
        )
        row = cur.fetchone()
        if row is None:  # deleted meanwhile (cannot happen under COMPACT_LOCK)
            raise RuntimeError(f"row ({g.dev}, {g.ts}) vanished during a write")
        stored = Group(g.dev, g.ts)
        for sid, v, dur, flags in zip(
            row[0], row[1], row[2], row[3] or [None] * len(row[0]), strict=True
        ):
            stored.add(sid, v, dur, flags.split(",") if flags else None)
        before = len(stored.sids)
        stored.merge(g)
        if len(stored.sids) > before:
            cur.execute(
                "UPDATE readings SET streams = %s, v = %s, dur = %s, flags = %s"
                " WHERE dev = %s AND ts = %s",
                (
                    stored.sids,
                    [float(v) for v in stored.vs],
                    stored.durs,
                    stored.flags,
                    g.dev,
                    g.ts,
                ),
            )
        return len(stored.sids) - before

    # ---- compaction ---------------------------------------------------------------------

    def compact(self, before: int) -> int:
        """Compact every raw hour that ends at or before ``before``; returns the points moved.
        One transaction per hour, holding COMPACT_LOCK exclusively (writes wait for it)."""
        moved = 0
        with self._lock:
            self._load_partitions()
            try:
                for h in sorted(self._hours):
                    if h + HOUR <= before:
                        moved += self._compact_hour(h)
            finally:  # a rolled-back hour leaves the partitions as they were, not as cached
                self._load_partitions()
        return moved

    def _compact_hour(self, h: int) -> int:
        db = self._writer()
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (COMPACT_LOCK,))
            found = db.execute("SELECT to_regclass(%s)", (raw_partition(h),)).fetchone()
            if found is None or found[0] is None:  # another controller did it
                self._hours.discard(h)
                return 0
            return self._pack_hour(db, h)

    def _pack_hour(self, db: psycopg.Connection[Any], h: int) -> int:
        """Hour ``h``'s raw partition into packed rows (merged with those already there), then
        dropped; inside the caller's transaction, which holds COMPACT_LOCK exclusively."""
        part = sql.Identifier(raw_partition(h))
        self._ensure_day(db, h - h % DAY)
        again = db.execute(
            "SELECT EXISTS (SELECT 1 FROM packed_hours WHERE bucket = %s)", (h,)
        ).fetchone()
        source: sql.Composable = sql.SQL(RAW_OF_HOUR).format(raw=part)
        if again and again[0]:
            source = sql.SQL(PACK_MERGE_SOURCE).format(raw=part, h=h)
        n = db.execute(
            sql.SQL("SELECT coalesce(sum(cardinality(streams)), 0) FROM {}").format(part)
        ).fetchone()
        db.execute(sql.SQL(PACK).format(h=h, source=source))
        db.execute("INSERT INTO packed_hours VALUES (%s) ON CONFLICT DO NOTHING", (h,))
        db.execute(sql.SQL("DROP TABLE {}").format(part))
        self._hours.discard(h)
        return int(n[0]) if n else 0

    # ---- queries --------------------------------------------------------------------------

    def _stream_id(self, key: StreamKey) -> int | None:
        tkey = (key.pole, key.node, key.src, key.q)
        sid = self._ids.get(tkey)
        if sid is None:
            rows = self._read(
                "SELECT id FROM streams WHERE pole = %s AND node = %s AND src = %s AND q = %s",
                tkey,
            )
            if rows:
                sid = self._ids[tkey] = rows[0][0]
        return sid

    def streams(self) -> list[StreamKey]:
        rows = self._read("SELECT pole, node, src, q FROM streams ORDER BY id")
        return [StreamKey(*r) for r in rows]

    def query(
        self, stream: StreamKey, start: int, end: int, limit: int = 10_000, offset: int = 0
    ) -> list[Point]:
        sid = self._stream_id(stream)
        if sid is None:
            return []
        raw = RAW_POINTS.format(
            cond="stream = %(s)s AND ts >= %(a)s AND ts < %(b)s",
            rcond=RCOND,
            pcond=f"p.stream = %(s)s AND p.bucket > %(a)s - {HOUR} AND p.bucket < %(b)s",
        )
        rows = self._read(
            f"SELECT ts, v, dur, flags FROM ({raw}) x ORDER BY ts LIMIT %(n)s OFFSET %(o)s",
            {"s": sid, "a": start, "b": end, "n": limit, "o": offset},
        )
        return [Point(ts, v, dur, _flags(f)) for ts, v, dur, f in rows]

    def latest(self, streams: Iterable[StreamKey] | None = None) -> dict[StreamKey, Point]:
        rows = self._read(
            "SELECT s.pole, s.node, s.src, s.q, l.ts, l.v, l.dur, l.flags"
            " FROM latest l JOIN streams s ON s.id = l.stream"
        )
        out = {
            StreamKey(p, n, s, q): Point(ts, v, dur, _flags(f))
            for p, n, s, q, ts, v, dur, f in rows
        }
        if streams is not None:
            wanted = set(streams)
            out = {k: v for k, v in out.items() if k in wanted}
        return out

    def aggregate(self, stream: StreamKey, start: int, end: int, window: Window) -> list[Aggregate]:
        """Raw rows, packed rows and rollups, which never overlap, added per window. Packed
        hours wholly inside [lo, end) give their stored count/sum/min/max to hour and day
        windows without being unpacked; others (and every minute window) are unpacked."""
        sid = self._stream_id(stream)
        if sid is None:
            return []
        width = WINDOW_SECONDS[window]
        lo = start - start % width
        table = "rollup_minute" if window == "minute" else "rollup_hour"
        whole = f"p.bucket >= %(a)s AND p.bucket + {HOUR} <= %(b)s" if width >= HOUR else "false"
        raw = RAW_POINTS.format(
            cond="stream = %(s)s AND ts >= %(a)s AND ts < %(b)s",
            rcond=RCOND,
            pcond=f"p.stream = %(s)s AND p.bucket > %(a)s - {HOUR} AND p.bucket < %(b)s"
            f" AND NOT ({whole})",
        )
        query = f"""
            SELECT bucket, sum(n)::bigint, sum(s), min(lo), max(hi) FROM (
                SELECT ts - mod(ts, {width}) AS bucket, count(*) AS n, sum(v) AS s,
                       min(v) AS lo, max(v) AS hi
                FROM ({raw}) x GROUP BY 1
                UNION ALL
                SELECT p.bucket - mod(p.bucket, {width}), sum(p.n), sum(p.vsum), min(p.vmin),
                       max(p.vmax)
                FROM readings_packed p WHERE p.stream = %(s)s AND {whole} GROUP BY 1
                UNION ALL
                SELECT bucket - mod(bucket, {width}), sum(n), sum(sum), min(min), max(max)
                FROM {table} WHERE stream = %(s)s AND bucket >= %(a)s AND bucket < %(b)s
                GROUP BY 1
            ) parts GROUP BY bucket ORDER BY bucket
        """
        rows = self._read(query, {"s": sid, "a": lo, "b": end})
        return [Aggregate(b, int(n), s / n, mn, mx) for b, n, s, mn, mx in rows if n]

    def latest_by_id(self) -> dict[int, Point]:
        rows = self._read("SELECT stream, ts, v, dur, flags FROM latest")
        return {sid: Point(ts, v, dur, _flags(f)) for sid, ts, v, dur, f in rows}

    def observations(self, q: ObservationQuery) -> ObservationPage:
        """SensorThings Observations (controller/store/pg_observations.py)."""
        return pg_observations.observations(self._reader(), q)

    def stream_index(self) -> dict[StreamKey, StreamInfo]:
        rows = self._read(
            "SELECT s.id, s.pole, s.node, s.src, s.q,"
            " least((SELECT min(r.ts) FROM readings r WHERE r.dev = s.dev"
            "   AND s.id = ANY (r.streams)),"
            "  (SELECT p.bucket + p.ts_off[1] FROM readings_packed p WHERE p.stream = s.id"
            "   ORDER BY p.bucket LIMIT 1),"
            "  (SELECT min(bucket) FROM rollup_minute m WHERE m.stream = s.id),"
            "  (SELECT min(bucket) FROM rollup_hour h WHERE h.stream = s.id)),"
            " l.ts FROM streams s LEFT JOIN latest l ON l.stream = s.id"
        )
        return {
            StreamKey(p, n, src, q): StreamInfo(sid, first, last)
            for sid, p, n, src, q, first, last in rows
        }

    # ---- retention ------------------------------------------------------------------------

    def apply_retention(self, now: int) -> dict[str, int]:
        """Hourly (controller/app.py): create the next raw partitions, compact the hours that
        ended ``compact_after_s`` ago, then roll up and drop the packed days wholly past raw
        retention, and delete rollups past theirs."""
        raw_days, minute_days, hour_days = self.retention
        counts: dict[str, int] = {}
        with self._lock:
            self._ensure_hours(_hour(now) + HOUR * i for i in range(AHEAD_HOURS))
        counts["compacted"] = self.compact(now - self.compact_after_s)
        with self._lock:
            db = self._writer()
            self._load_partitions()
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (COMPACT_LOCK,))
                if raw_days:
                    cutoff = now - raw_days * 86400
                    deleted = 0
                    for h in sorted(self._hours):
                        if h + HOUR <= cutoff:  # not compacted yet (compact_after_s > retention)
                            self._pack_hour(db, h)
                    for day in sorted(self._days):
                        if day + DAY > cutoff:
                            continue
                        part = sql.Identifier(packed_partition(day))
                        n = db.execute(sql.SQL("SELECT coalesce(sum(n), 0) FROM {}").format(part))
                        deleted += int(n.fetchone()[0])  # type: ignore[index]
                        db.execute(sql.SQL(ROLLUP_MINUTE).format(part=part))
                        db.execute(sql.SQL(ROLLUP_HOUR).format(part=part))
                        db.execute(sql.SQL("DROP TABLE {}").format(part))
                        db.execute(
                            "DELETE FROM packed_hours WHERE bucket >= %s AND bucket < %s",
                            (day, day + DAY),
                        )
                        self._days.discard(day)
                    counts["raw_deleted"] = deleted
                counts["batch_keys_deleted"] = db.execute(
                    "DELETE FROM batches WHERE received < %s", (now - BATCH_KEYS_S,)
                ).rowcount
                if minute_days:
                    counts["minute_deleted"] = db.execute(
                        "DELETE FROM rollup_minute WHERE bucket < %s", (now - minute_days * 86400,)
                    ).rowcount
                if hour_days:
                    counts["hour_deleted"] = db.execute(
                        "DELETE FROM rollup_hour WHERE bucket < %s", (now - hour_days * 86400,)
                    ).rowcount
        return counts

    # ---- size -------------------------------------------------------------------------------

    def size(self) -> dict[str, int]:
        """Bytes on disk (tables, indexes, TOAST) of each table of the store, partitions
        included, and ``points`` (raw rows plus packed points held)."""
        out: dict[str, int] = {}
        rows = self._read(
            "SELECT coalesce(i.inhparent::regclass::text, c.relname::text),"
            " sum(pg_total_relation_size(c.oid))"
            " FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace"
            " LEFT JOIN pg_inherits i ON i.inhrelid = c.oid"
            " WHERE ns.nspname = current_schema() AND c.relkind IN ('r', 'p')"
            " GROUP BY 1"
        )
        for name, size in rows:
            out[str(name)] = int(size)
        ((points,),) = self._read(
            "SELECT (SELECT coalesce(sum(cardinality(streams)), 0) FROM readings)"
            " + (SELECT coalesce(sum(n), 0) FROM readings_packed)"
        )
        out["points"] = int(points)
        return out

    def close(self) -> None:
        self._db.close()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()


class Group:
    """The points of one node at one time (a row of ``readings``), as a write builds it; the
    first copy of a stream's point is the one kept. Until its stream and node have ids (made
    under the write lock), ``sids`` and ``dev`` hold their keys (``resolve``)."""

    __slots__ = ("dev", "durs", "flags", "sids", "ts", "vs")

    def __init__(self, dev: Any, ts: int) -> None:
        self.dev = dev
        self.ts = ts
        self.sids: list[Any] = []
        self.vs: list[float] = []
        self.durs: list[int | None] = []
        self.flags: list[str | None] | None = None  # None while no point has flags

    def add(self, sid: Any, v: float, dur: int | None, flags: Iterable[str] | None) -> None:
        if sid in self.sids:  # at most a few entries: a list is cheaper than a set
            return
        if flags:
            if self.flags is None:
                self.flags = [None] * len(self.sids)
            self.flags.append(",".join(flags))
        elif self.flags is not None:
            self.flags.append(None)
        self.sids.append(sid)
        self.vs.append(v)
        self.durs.append(dur)

    def merge(self, other: Group) -> None:
        flags = other.flags or [None] * len(other.sids)
        for sid, v, dur, f in zip(other.sids, other.vs, other.durs, flags, strict=True):
            self.add(sid, v, dur, f.split(",") if f else None)

    def drop(self, sids: set[int]) -> None:
        if not sids:
            return
        keep = [i for i, sid in enumerate(self.sids) if sid not in sids]
        self.sids = [self.sids[i] for i in keep]
        self.vs = [self.vs[i] for i in keep]
        self.durs = [self.durs[i] for i in keep]
        if self.flags is not None:
            self.flags = [self.flags[i] for i in keep]

    def resolve(self, ids: dict[tuple[str, str, str, str], int], devs: dict[Any, int]) -> None:
        if isinstance(self.dev, tuple):
            self.dev = devs[self.dev]
        self.sids = [ids[s] if isinstance(s, tuple) else s for s in self.sids]

    def line(self, i: int) -> str:
        """This row as a line of COPY's text format (arrays as PostgreSQL array literals)."""
        durs = ",".join("NULL" if d is None else str(d) for d in self.durs)
        flags = _NULL
        if self.flags is not None:
            flags = _copy_text(
                "{" + ",".join("NULL" if f is None else _quoted(f) for f in self.flags) + "}"
            )
        return (
            f"{i}\t{self.dev}\t{self.ts}\t{{{','.join(map(str, self.sids))}}}"
            f"\t{{{','.join(map(repr, self.vs))}}}\t{{{durs}}}\t{flags}\n"
        )


def _newest(groups: list[Group]) -> list[list[Any]]:
    """Columns (stream, ts, v, dur, flags) of the newest point of each stream in ``groups``
    (of two at one time, the first)."""
    newest: dict[int, tuple[int, float, int | None, str | None]] = {}
    for g in groups:
        ts = g.ts
        flags: Iterable[str | None] = g.flags if g.flags is not None else [None] * len(g.sids)
        for sid, v, dur, f in zip(g.sids, g.vs, g.durs, flags, strict=True):
            seen = newest.get(sid)
            if seen is None or seen[0] < ts:
                newest[sid] = (ts, float(v), dur, f)  # an int among floats: one array type
    return [list(newest), *(list(c) for c in zip(*newest.values(), strict=True))]


def _quoted(text: str) -> str:
    """An element of a PostgreSQL array literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _copy_text(text: str) -> str:
    """``text`` escaped for COPY's text format."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _flags(text: str | None) -> tuple[str, ...]:
    return tuple(text.split(",")) if text else ()
