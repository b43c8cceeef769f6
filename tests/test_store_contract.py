"""One contract for every time-series backend: SQLite and PostgreSQL (a throwaway server for the
session, a fresh schema per test) always; InfluxDB when STREETPOLE_INFLUXDB_URL names a real
InfluxDB 2 (CI has none; see test_influx_write_path). What only PostgreSQL has (compaction,
partitions, several writers) is in test_store_postgres.py."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.store.base import BATCH_KEYS_S, Batch, StreamKey, TimeSeriesStore, WriteResult
from controller.store.sqlite import SqliteStore
from tests.harness.postgres import Postgres, fresh_schema

# a UTC midnight 20 to 44 hours ago: inside the 2-day raw retention some tests set, with hours
# to spare for a run that crosses midnight after this is computed (yesterday's midnight then
# fell out of it, and a test failed only in the suite)
T0 = (int(time.time()) - 20 * 3600) // 86400 * 86400
AIR = StreamKey("p1", "n1", "air", "pm25")


def batch(seq: int, readings: list[tuple[int, str, float]], pole: str = "p1") -> Batch:
    return Batch(
        pole, "n1", 1, seq, [{"ts": ts, "q": q, "v": v, "src": "air"} for ts, q, v in readings]
    )


def make_sqlite(tmp: Path) -> TimeSeriesStore:
    return SqliteStore(tmp / "ts.db", retention_raw_days=30)


def make_influx(tmp: Path) -> TimeSeriesStore:
    from controller.store.influx import InfluxStore

    url = os.environ["STREETPOLE_INFLUXDB_URL"]
    bucket = os.environ.get("STREETPOLE_INFLUXDB_BUCKET", "streetpole-test")
    return InfluxStore(
        url,
        os.environ.get("STREETPOLE_INFLUXDB_TOKEN", ""),
        os.environ.get("STREETPOLE_INFLUXDB_ORG", "streetpole"),
        bucket,
    )


def make_sqlite_recent(tmp: Path) -> TimeSeriesStore:
    """Every point through the table of recent buckets (see controller/store/sqlite.py)."""
    return SqliteStore(tmp / "ts.db", retention_raw_days=30, horizon=0)


def make_postgres(pg: Postgres, compacted: bool = False) -> TimeSeriesStore:
    from controller.store.postgres import PostgresStore

    store = PostgresStore(fresh_schema(pg), retention_raw_days=30)
    if compacted:  # every write is followed by compaction of every hour (see the fixture)
        write = store.write

        def write_then_compact(batches: Iterable[Batch]) -> WriteResult:
            result = write(batches)
            store.compact(2**40)
            return result

        store.write = write_then_compact  # type: ignore[method-assign]
    return store


BACKENDS = [
    pytest.param(make_sqlite, id="sqlite"),
    pytest.param(make_sqlite_recent, id="sqlite-recent"),
    pytest.param("postgres", id="postgres"),
    pytest.param("postgres-packed", id="postgres-packed"),
]
BACKENDS.append(
    pytest.param(
        make_influx,
        id="influxdb",
        marks=pytest.mark.skipif(
            "STREETPOLE_INFLUXDB_URL" not in os.environ,
            reason="needs a real InfluxDB 2: set STREETPOLE_INFLUXDB_URL (CI checks the write path "
            "against VictoriaMetrics only)",
        ),
    )
)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TimeSeriesStore]:
    if isinstance(request.param, str):  # PostgreSQL; "-packed": every point read from packed rows
        pg = request.getfixturevalue("postgres")
        s = make_postgres(pg, compacted=request.param.endswith("-packed"))
    else:
        s = request.param(tmp_path)
    yield s
    s.close()


def test_write_is_idempotent(store: TimeSeriesStore) -> None:
    b = batch(1, [(T0 + 60, "pm25", 10.0), (T0 + 60, "pm10", 20.0)])
    first = store.write([b])
    assert (first.points, first.stored) == (2, 2)
    again = store.write([b])
    assert again.points == 2
    assert len(store.query(AIR, T0, T0 + 3600)) == 1


def test_a_partly_overlapping_batch_stores_only_its_new_points(store: TimeSeriesStore) -> None:
    """Another batch (a new seq) that repeats some points of a stored one, at the same times,
    beside new ones: a node that sent its buffer again in other batches. Also two copies of a
    point inside one write: the first is kept."""
    store.write([batch(1, [(T0 + 60, "pm25", 1.0), (T0 + 120, "pm25", 2.0)])])
    again = store.write(
        [
            batch(2, [(T0 + 60, "pm25", 9.0), (T0 + 60, "pm10", 3.0), (T0 + 180, "pm25", 4.0)]),
            batch(3, [(T0 + 60, "pm10", 8.0), (T0 + 240, "pm25", 5.0), (T0 + 240, "pm25", 7.0)]),
        ]
    )
    assert (again.points, again.stored, again.duplicates) == (6, 3, 3)
    assert [(p.ts, p.v) for p in store.query(AIR, T0, T0 + 3600)] == [
        (T0 + 60, 1.0),
        (T0 + 120, 2.0),
        (T0 + 180, 4.0),
        (T0 + 240, 5.0),
    ]
    pm10 = store.query(StreamKey("p1", "n1", "air", "pm10"), T0, T0 + 3600)
    assert [(p.ts, p.v) for p in pm10] == [(T0 + 60, 3.0)]
    assert store.latest()[AIR].v == 5.0


def test_a_batch_without_readings_is_remembered(store: TimeSeriesStore) -> None:
    """Ingest may have refused every reading of a batch (no module measures them): the batch of
    a node never seen before is still stored, and its resend counted."""
    empty = Batch("p9", "n9", 1, 1, [])
    assert (store.write([empty]).points, store.write([empty]).batches_resent) == (0, 1)


def test_batch_keys_go_after_a_day_and_a_resend_still_stores_nothing_twice(
    store: TimeSeriesStore,
) -> None:
    """A batch's key is kept BATCH_KEYS_S (a node resends within the hour); a copy that comes
    later is no longer dropped whole but is still stored once, point by point."""
    b = batch(1, [(T0 + 60, "pm25", 10.0), (T0 + 120, "pm25", 11.0)])
    store.write([b])
    assert store.write([b]).batches_resent == 1  # the key, within the day
    counts = store.apply_retention(int(time.time()) + BATCH_KEYS_S + 3600)
    assert counts["batch_keys_deleted"] == 1
    again = store.write([b])
    assert (again.batches_resent, again.stored, again.duplicates) == (0, 0, 2)
    assert [(p.ts, p.v) for p in store.query(AIR, T0, T0 + 3600)] == [
        (T0 + 60, 10.0),
        (T0 + 120, 11.0),
    ]


def test_query_range_order_and_paging(store: TimeSeriesStore) -> None:
    store.write([batch(i, [(T0 + 60 * i, "pm25", float(i))]) for i in range(10)])
    pts = store.query(AIR, T0 + 120, T0 + 480)
    assert [p.v for p in pts] == [2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    assert [p.v for p in store.query(AIR, T0, T0 + 3600, limit=3, offset=4)] == [4.0, 5.0, 6.0]
    assert store.query(StreamKey("p1", "n1", "air", "no2"), T0, T0 + 3600) == []


def test_latest_per_stream(store: TimeSeriesStore) -> None:
    store.write([batch(1, [(T0 + 60, "pm25", 1.0), (T0 + 60, "pm10", 5.0)])])
    store.write([batch(2, [(T0 + 120, "pm25", 2.0)])])
    store.write([batch(3, [(T0 + 30, "pm25", 9.0)])])  # a late backlog reading is not "latest"
    latest = store.latest()
    assert latest[AIR].ts == T0 + 120 and latest[AIR].v == 2.0
    assert latest[StreamKey("p1", "n1", "air", "pm10")].v == 5.0


def test_aggregates_per_minute_hour_day(store: TimeSeriesStore) -> None:
    readings = [(T0 + 20 * i, "pm25", float(i % 7)) for i in range(3 * 180)]  # 3 hours, every 20 s
    store.write([batch(i, readings[i : i + 50]) for i in range(0, len(readings), 50)])
    minutes = store.aggregate(AIR, T0, T0 + 3 * 3600, "minute")
    assert len(minutes) == 180 and all(a.count == 3 for a in minutes)
    hours = store.aggregate(AIR, T0, T0 + 3 * 3600, "hour")
    assert [a.bucket for a in hours] == [T0, T0 + 3600, T0 + 7200]
    assert [a.count for a in hours] == [180, 180, 180]
    values = [v for _, _, v in readings[:180]]
    assert hours[0].mean == pytest.approx(sum(values) / 180)
    assert (hours[0].min, hours[0].max) == (0.0, 6.0)
    (day,) = store.aggregate(AIR, T0, T0 + 86400, "day")
    assert (day.bucket, day.count) == (T0, 540)


def test_sqlite_retention_rolls_up_before_deleting(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "ts.db", retention_raw_days=2, retention_minute_days=0)
    readings = [(T0 + 30 * i, "pm25", float(i % 5)) for i in range(240)]  # 2 hours
    store.write([batch(i, readings[i : i + 40]) for i in range(0, 240, 40)])
    before = store.aggregate(AIR, T0, T0 + 86400, "hour")
    counts = store.apply_retention(now=T0 + 4 * 86400)
    assert counts["raw_deleted"] == 240
    assert store.query(AIR, T0, T0 + 86400) == []
    after = store.aggregate(AIR, T0, T0 + 86400, "hour")
    assert after == before  # same answers from the rollups
    assert len(store.aggregate(AIR, T0, T0 + 86400, "minute")) == 120
    # a reading older than raw retention (perhaps a resend of one rolled up) is refused and
    # counted, never rolled up twice
    result = store.write([batch(99, [(T0 - 3 * 86400, "pm25", 100.0)])])
    assert result.extra == {"too_old": 1} and result.stored == 0
    store.apply_retention(now=T0 + 4 * 86400)
    first = store.aggregate(AIR, T0, T0 + 3600, "hour")[0]
    assert (first.count, first.max) == (120, 4.0)
    store.close()


quantities = st.sampled_from(["pm25", "pm10", "LAeq", "temperature"])
readings_st = st.lists(
    st.tuples(st.integers(T0, T0 + 7200), quantities, st.floats(-1e6, 1e6, allow_nan=False)),
    min_size=1,
    max_size=60,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    groups=st.lists(readings_st, min_size=1, max_size=5),
    cuts=st.lists(
        st.none() | st.tuples(st.integers(T0, T0 + 7800), st.none() | st.integers(1, 20)),
        min_size=5,
        max_size=5,
    ),
)
@pytest.mark.slow
def test_sqlite_never_loses_or_doubles_a_point(
    tmp_path_factory: pytest.TempPathFactory,
    groups: list[list[tuple[int, str, float]]],
    cuts: list[tuple[int, int | None] | None],
) -> None:
    """Also while recent buckets move into readings between writes (``cuts``: up to a time,
    whole or one slice of a few points): a point is in one table or the other, and a resend
    finds it in either."""
    store = SqliteStore(tmp_path_factory.mktemp("prop") / "ts.db", horizon=T0)
    expected: dict[tuple[str, int], float] = {}
    batches = []
    for seq, group in enumerate(groups):
        unique: dict[tuple[str, int], tuple[int, str, float]] = {}
        for ts, q, v in group:
            unique.setdefault((q, ts), (ts, q, v))
        for (q, ts), (_, _, v) in unique.items():
            expected.setdefault((q, ts), v)  # the first stored wins
        batches.append(batch(seq, list(unique.values())))
    for b, cut in zip(batches, cuts, strict=False):
        store.write([b])
        if cut is not None:
            store.compact(*cut)
    result = store.write(batches)  # everything again: all duplicates
    assert result.stored == 0 and result.duplicates == result.points
    got = {}
    for key in store.streams():
        for p in store.query(key, 0, 2**40):
            got[(key.q, p.ts)] = p.v
    assert got == expected
    store.close()


def test_sqlite_large_write_keeps_the_first_copy_across_statement_chunks(tmp_path: Path) -> None:
    """controller/store/sqlite.py binds rows in chunks of several hundred per statement and by
    shape (with or without flags): one write far past a chunk, with copies of a reading inside
    it (the first is kept) and flagged readings between plain ones, stores exactly as one
    statement per row would."""
    from controller.store.sqlite import CHUNK

    store = SqliteStore(tmp_path / "ts.db", retention_raw_days=30)
    readings: list[dict[str, object]] = []
    for i in range(3 * CHUNK + 7):
        r: dict[str, object] = {"ts": T0 + i, "q": "pm25", "v": float(i), "dur": 1, "src": "air"}
        if i % 97 == 5:
            r["flags"] = ["indicative"]
        if i % 113 == 7:
            del r["dur"]
        readings.append(r)
    copies = [dict(readings[i], v=-1.0) for i in (0, CHUNK - 1, CHUNK, 2 * CHUNK + 3)]
    result = store.write([Batch("p1", "n1", 1, 1, readings + copies)])
    assert (result.points, result.stored, result.duplicates) == (
        len(readings) + 4,
        len(readings),
        4,
    )
    points = store.query(AIR, 0, 2**40, limit=10**6)
    assert [p.v for p in points] == [float(i) for i in range(len(readings))]
    assert [p.flags for p in points if p.flags] == [("indicative",)] * sum(
        1 for r in readings if "flags" in r
    )
    assert [p.dur for p in points].count(None) == sum(1 for r in readings if "dur" not in r)
    latest = store.latest()[AIR]
    assert (latest.ts, latest.v) == (T0 + len(readings) - 1, float(len(readings) - 1))
    again = store.write([Batch("p1", "n1", 1, 1, readings)])
    assert (again.stored, again.duplicates, again.batches_resent) == (0, len(readings), 1)
    store.close()


def test_sqlite_recent_points_move_into_readings_and_reads_see_both(tmp_path: Path) -> None:
    """The default store: points of the open buckets go to ``recent``, late ones straight to
    ``readings``; once the clock passes their bucket they move, and every read gives the same
    answers before and after, with no point twice."""
    from controller.opendata.query import Neg, Path
    from controller.opendata.sql import TS
    from controller.store.base import ObservationQuery
    from controller.store.sqlite import BUCKET

    RESULT = Path(("result",))

    store = SqliteStore(tmp_path / "ts.db", retention_raw_days=30)
    now = int(time.time())
    assert store.horizon == now - now % BUCKET - BUCKET
    fresh = [(now - 30 * i, "pm25", float(i)) for i in range(10)]  # the last five minutes
    late = [(T0 + 60 * i, "pm25", float(100 + i)) for i in range(10)]  # yesterday
    store.write([batch(1, fresh), batch(2, late)])

    def placed() -> tuple[int, int]:
        db = sqlite3.connect(store.path)
        try:
            return (
                db.execute("SELECT count(*) FROM readings").fetchone()[0],
                db.execute("SELECT count(*) FROM recent").fetchone()[0],
            )
        finally:
            db.close()

    def reads() -> tuple[object, ...]:
        sid = store.stream_index()[AIR].id
        return (
            store.query(AIR, 0, 2**40),
            store.aggregate(AIR, T0, now + 1, "hour"),
            store.stream_index()[AIR],
            store.observations(ObservationQuery((sid,), orderby=((TS, True),), limit=3)).rows,
            store.observations(
                ObservationQuery((sid,), orderby=((Neg(RESULT), False),), limit=3, count=True)
            ),
            store.observations(ObservationQuery((sid,), counted=(sid,), count_window=86400)),
        )

    assert placed() == (10, 10)
    before = reads()
    assert [p.v for p in before[0]] == [*(100.0 + i for i in range(10)), *range(9, -1, -1)]
    assert [r[1] for r in before[3]] == [now, now - 30, now - 60]  # type: ignore[index]
    moved = 0
    while store.horizon < now + BUCKET:  # slice by slice, the reads never change
        moved += store.compact(now + 2 * BUCKET, limit=1)
        assert sum(placed()) == 20 and reads() == before
    assert moved == 10 and placed() == (20, 0)
    again = store.write([batch(1, fresh), batch(2, late)])  # resent after the move
    assert (again.stored, again.duplicates) == (0, 20)
    store.close()
    reopened = SqliteStore(tmp_path / "ts.db")  # the horizon never moves back
    assert reopened.horizon == now - now % BUCKET + 2 * BUCKET
    reopened.close()


def test_sqlite_retention_and_raw_reads_seek_instead_of_scanning(tmp_path: Path) -> None:
    """Retention runs every hour holding the writer, and reads reach the table of recent
    buckets: none of their statements may walk a whole table of points (their cost would grow
    with the data kept)."""
    from controller.store.sqlite import BY_STREAM_DELETE, RAW, RECENT_BUCKETS, ROLLUP_ADD

    store = SqliteStore(tmp_path / "ts.db")
    statements = [
        ROLLUP_ADD.format(table="rollup_minute", width=60),
        ROLLUP_ADD.format(table="rollup_hour", width=3600),
        BY_STREAM_DELETE.format(table="readings", col="ts"),
        BY_STREAM_DELETE.format(table="rollup_minute", col="bucket"),
        BY_STREAM_DELETE.format(table="rollup_hour", col="bucket"),
        "DELETE FROM batches WHERE received < ?",
        f"WITH RECURSIVE {RECENT_BUCKETS} "
        + RAW.format(cond="stream IN (1, 2) AND ts >= ? AND ts < ?")
        + " ORDER BY ts DESC",
    ]
    db = sqlite3.connect(store.path)
    try:
        for sql in statements:
            plan = [
                row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, (0,) * sql.count("?"))
            ]
            scans = [
                step
                for step in plan
                if step.startswith("SCAN") and step not in ("SCAN s", "SCAN rb")
            ]
            assert plan and not scans, (sql, plan)
    finally:
        db.close()
        store.close()


def test_sqlite_horizon_moved_by_another_process_is_seen(tmp_path: Path) -> None:
    """Two stores on one file (two processes): a point resent through one after the other
    moved its bucket is still found, not stored a second time in ``recent``."""
    from controller.store.sqlite import BUCKET

    a = SqliteStore(tmp_path / "ts.db", horizon=T0)
    b = SqliteStore(tmp_path / "ts.db", horizon=T0)
    point = batch(1, [(T0 + 60, "pm25", 1.0)])
    assert a.write([point]).stored == 1
    assert b.compact(T0 + 2 * BUCKET) == 1
    again = a.write([batch(2, [(T0 + 60, "pm25", 1.0)])])
    assert (again.stored, again.duplicates) == (0, 1)
    assert len(a.query(AIR, 0, 2**40)) == 1
    a.close()
    b.close()


def test_sqlite_stream_created_by_another_process_is_found(tmp_path: Path) -> None:
    """Two stores on one file (ingest in two processes): a stream the other created since this
    one opened is looked up, not created again (which failed the write on the unique key)."""
    a = SqliteStore(tmp_path / "ts.db", horizon=T0)
    b = SqliteStore(tmp_path / "ts.db", horizon=T0)
    assert a.write([batch(1, [(T0 + 60, "pm25", 1.0)])]).stored == 1
    assert b.write([batch(2, [(T0 + 120, "pm25", 2.0)])]).stored == 1
    assert a.write([batch(3, [(T0 + 180, "pm25", 3.0)])]).stored == 1
    assert [p.v for p in b.query(AIR, 0, 2**40)] == [1.0, 2.0, 3.0]
    assert len(a.stream_index()) == 1
    a.close()
    b.close()


def test_sqlite_points_of_a_bucket_half_moved_go_where_their_stream_is(tmp_path: Path) -> None:
    """A slice moves the first streams of the horizon's bucket; a resend of their points must
    find them in readings, and the other streams' points stay in recent until their slice."""
    store = SqliteStore(tmp_path / "ts.db", horizon=T0)
    first = [(T0 + 60, "pm25", 1.0), (T0 + 60, "pm10", 2.0)]
    store.write([batch(1, first)])
    assert store.compact(T0 + 3600, limit=1) == 1  # pm25, the first stream
    again = store.write([batch(2, [*first, (T0 + 120, "pm25", 3.0), (T0 + 120, "pm10", 4.0)])])
    assert (again.stored, again.duplicates) == (2, 2)
    db = sqlite3.connect(store.path)
    try:
        by_table = {
            t: sorted(db.execute(f"SELECT stream, ts FROM {t}").fetchall())
            for t in ("readings", "recent")
        }
    finally:
        db.close()
    assert by_table == {
        "readings": [(1, T0 + 60), (1, T0 + 120)],
        "recent": [(2, T0 + 60), (2, T0 + 120)],
    }
    store.compact(T0 + 3600)
    got = {(k.q, p.ts): p.v for k in store.streams() for p in store.query(k, 0, 2**40)}
    assert got == {
        ("pm25", T0 + 60): 1.0,
        ("pm10", T0 + 60): 2.0,
        ("pm25", T0 + 120): 3.0,
        ("pm10", T0 + 120): 4.0,
    }
    store.close()
