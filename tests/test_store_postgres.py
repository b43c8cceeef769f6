"""What only the PostgreSQL store has (controller/store/postgres.py): compaction into packed
rows, hourly partitions dropped by compaction and retention, several writers on one database,
durability across a server crash, and ingest into it end to end through a real broker.
The common contract runs in test_store_contract.py."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.broker import Broker
from controller.ingest.worker import IngestWorker
from controller.metrics import Metrics
from controller.settings import Settings
from controller.store.base import Batch, StreamKey
from controller.store.ops import OpsStore
from controller.store.pg_schema import HOUR
from controller.store.postgres import PostgresStore
from tests.harness.postgres import Postgres, fresh_schema
from tests.harness.wait import until
from tests.ingest_helpers import meas, meas_topic, publish_all
from tests.test_store_contract import AIR, T0, batch, readings_st


@pytest.fixture
def url(postgres: Postgres) -> str:
    return fresh_schema(postgres)


@pytest.fixture
def store(url: str) -> Iterator[PostgresStore]:
    s = PostgresStore(url, retention_raw_days=30)
    yield s
    s.close()


def partitions(url: str) -> dict[str, list[str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT i.inhparent::regclass::text, c.relname FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'"
            " ORDER BY 2"
        ).fetchall()
    out: dict[str, list[str]] = {}
    for parent, name in rows:
        out.setdefault(parent.split(".")[-1], []).append(name)
    return out


def every_point(store: PostgresStore) -> dict[tuple[str, int], float]:
    return {(k.q, p.ts): p.v for k in store.streams() for p in store.query(k, 0, 2**40)}


def test_compaction_keeps_every_point_once_and_resends_store_nothing(
    store: PostgresStore, url: str
) -> None:
    """Three hours of points, some of them flagged or without a duration, compacted; then the
    same batches again, a batch overlapping a compacted hour with new points in it (late), and
    compaction again, which merges the late points into the hour's packed rows."""
    readings = [(T0 + 50 * i, "pm25", float(i)) for i in range(3 * 72)]
    batches = [batch(i, readings[i : i + 40]) for i in range(0, len(readings), 40)]
    odd = Batch(
        "p1",
        "n1",
        2,
        1,
        [
            {"ts": T0 + 7, "q": "pm10", "v": 1.5, "src": "air", "flags": ["indicative"]},
            {"ts": T0 + 8, "q": "pm10", "v": 2.5, "dur": 60, "src": "air"},
        ],
    )
    assert store.write([*batches, odd]).stored == len(readings) + 2
    before = every_point(store)
    hourly = store.aggregate(AIR, T0, T0 + 3 * HOUR, "hour")
    minutes = store.aggregate(AIR, T0, T0 + 3 * HOUR, "minute")
    assert store.compact(T0 + 3 * HOUR) == len(readings) + 2
    assert store.compact(T0 + 3 * HOUR) == 0  # nothing left to compact
    assert partitions(url).get("readings", []) == []  # the raw hours were dropped
    assert every_point(store) == before
    assert store.query(StreamKey("p1", "n1", "air", "pm10"), 0, 2**40)[0].flags == ("indicative",)
    assert store.query(StreamKey("p1", "n1", "air", "pm10"), 0, 2**40)[0].dur is None
    assert store.aggregate(AIR, T0, T0 + 3 * HOUR, "hour") == hourly
    assert store.aggregate(AIR, T0, T0 + 3 * HOUR, "minute") == minutes
    again = store.write([*batches, odd])
    assert (again.stored, again.duplicates) == (0, len(readings) + 2)
    late = [(T0 + 50 * i + 1, "pm25", -1.0) for i in range(0, 72, 3)]  # new, in the first hour
    resend = store.write([batch(99, [*readings[:30], *late])])
    assert (resend.stored, resend.duplicates) == (len(late), 30)
    assert store.compact(T0 + 3 * HOUR) == len(late)
    merged = every_point(store)
    assert merged == {**before, **{("pm25", ts): v for ts, _, v in late}}
    assert store.write([batch(100, late)]).stored == 0
    first = store.aggregate(AIR, T0, T0 + HOUR, "hour")[0]
    assert first.count == 72 + len(late) and first.min == -1.0
    assert store.size()["points"] == len(merged)


def test_retention_rolls_up_and_drops_whole_day_partitions(url: str) -> None:
    store = PostgresStore(url, retention_raw_days=2, retention_minute_days=0, compact_after_s=0)
    readings = [(T0 + 30 * i, "pm25", float(i % 5)) for i in range(240)]  # 2 hours
    store.write([batch(i, readings[i : i + 40]) for i in range(0, 240, 40)])
    before = store.aggregate(AIR, T0, T0 + 86400, "hour")
    day = f"readings_packed_d{T0 - T0 % 86400}"
    counts = store.apply_retention(now=T0 + 4 * 86400)
    assert counts["raw_deleted"] == 240 and counts["compacted"] == 240
    assert day not in partitions(url).get("readings_packed", [])
    assert store.query(AIR, T0, T0 + 86400) == []
    assert store.aggregate(AIR, T0, T0 + 86400, "hour") == before
    assert len(store.aggregate(AIR, T0, T0 + 86400, "minute")) == 120
    result = store.write([batch(99, [(T0 - 3 * 86400, "pm25", 100.0)])])
    assert result.extra == {"too_old": 1} and result.stored == 0
    # the next raw partitions are made ahead of the clock
    assert len(partitions(url).get("readings", [])) >= 3
    store.close()


def test_two_writers_create_one_stream_once_and_store_each_point_once(url: str) -> None:
    """Two stores (two controllers) write the same new streams and overlapping points at the
    same moment: one id per stream, every point once."""
    stores = [PostgresStore(url), PostgresStore(url)]
    go = threading.Barrier(2)
    results = []

    def run(s: PostgresStore, offset: int) -> None:
        go.wait()
        for rnd in range(5):
            readings = [
                (T0 + 60 * (rnd * 20 + i), q, 1.0) for i in range(20) for q in ("pm25", "pm10")
            ]
            results.append(s.write([batch(offset + rnd, readings, pole=f"p{rnd}")]))

    threads = [threading.Thread(target=run, args=(s, 10 * i)) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.stored for r in results) == 5 * 40
    assert sum(r.duplicates for r in results) == 5 * 40
    index = stores[0].stream_index()
    assert len(index) == 10 and len({i.id for i in index.values()}) == 10
    assert index == stores[1].stream_index()
    for s in stores:
        s.close()


def test_a_store_opens_beside_a_writer_in_the_middle_of_a_write(url: str) -> None:
    """A second controller starting while the first one writes: its schema check takes no
    table lock (CREATE INDEX IF NOT EXISTS would wait for the writer's, and deadlocked)."""
    first = PostgresStore(url)
    first.write([batch(1, [(T0, AIR.q, 1.0)])])
    opened: list[PostgresStore] = []
    with psycopg.connect(url) as writer:  # a write under way: its tables locked for writing
        writer.execute("INSERT INTO store_meta (k, v) VALUES ('a write', 1)")
        writer.execute("LOCK TABLE readings, batches IN ROW EXCLUSIVE MODE")
        t = threading.Thread(target=lambda: opened.append(PostgresStore(url)), daemon=True)
        t.start()
        t.join(10)
        assert opened, "the second store waited for the writer's tables"
    for s in (first, *opened):
        s.close()


@pytest.mark.slow
def test_a_write_is_durable_when_it_returns() -> None:
    """The server crashes (immediate stop: no shutdown checkpoint) right after a write returns;
    after the restart the points are there, and the same store writes again (it reconnects).
    A server of its own: the session's is shared by tests that may hold connections."""
    pg = Postgres()
    pg.start()
    try:
        url = fresh_schema(pg)
        store = PostgresStore(url)
        two = [(T0 + 60, "pm25", 1.0), (T0 + 60, "pm10", 2.0)]
        assert store.write([batch(1, two)]).stored == 2
        pg.restart()
        reopened = PostgresStore(url)
        assert [p.v for p in reopened.query(AIR, 0, 2**40)] == [1.0]
        reopened.close()
        assert store.write([batch(2, [(T0 + 120, "pm25", 3.0)])]).stored == 1
        assert [p.v for p in store.query(AIR, 0, 2**40)] == [1.0, 3.0]
        store.close()
    finally:
        pg.stop()


def test_ingest_into_postgresql_through_a_real_broker(
    broker: Broker, tmp_path: Path, store: PostgresStore, url: str
) -> None:
    """The ingest worker with a PostgreSQL store: every batch once (resends included), and the
    points readable through the store."""
    settings = Settings(mqtt_url=broker.url, data_dir=tmp_path)
    worker = IngestWorker(
        settings, store, OpsStore(tmp_path / "ops.db", settings.dead_letter_max), Metrics()
    )
    msgs = [(meas_topic(f"p{i % 3}"), meas(i)) for i in range(150)]
    msgs += msgs[:30]  # resent

    async def main() -> None:
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(worker.connected.wait(), 10)
        await asyncio.to_thread(publish_all, broker, msgs)
        await until(lambda: worker.stats.messages >= len(msgs), 60)
        task.cancel()

    asyncio.run(main())
    with psycopg.connect(url) as conn:
        points, batches = conn.execute(
            "SELECT (SELECT sum(cardinality(streams)) FROM readings),"
            " (SELECT count(*) FROM batches)"
        ).fetchone()  # type: ignore[misc]
    assert (points, batches) == (1500, 150)
    assert worker.stats.duplicate_points == 300
    assert len(store.streams()) == 30


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    groups=st.lists(readings_st, min_size=1, max_size=4),
    cuts=st.lists(st.none() | st.integers(T0, T0 + 7800), min_size=4, max_size=4),
)
@pytest.mark.slow
def test_never_loses_or_doubles_a_point_across_compactions(
    postgres: Postgres,
    groups: list[list[tuple[int, str, float]]],
    cuts: list[int | None],
) -> None:
    """Batches of random points (several at one time, in several batches), with compaction of
    the hours before a random time between writes: every point once, the first copy kept, and
    everything written again stores nothing."""
    store = PostgresStore(fresh_schema(postgres))
    expected: dict[tuple[str, int], float] = {}
    batches = []
    for seq, group in enumerate(groups):
        unique: dict[tuple[str, int], tuple[int, str, float]] = {}
        for ts, q, v in group:
            unique.setdefault((q, ts), (ts, q, v))
        for (q, ts), (_, _, v) in unique.items():
            expected.setdefault((q, ts), v)
        batches.append(batch(seq, list(unique.values())))
    for b, cut in zip(batches, cuts, strict=False):
        store.write([b])
        if cut is not None:
            store.compact(cut)
    again = [Batch(b.pole, b.node, 2, b.seq, b.readings) for b in batches]  # new batch keys
    result = store.write(again)
    assert result.stored == 0 and result.duplicates == result.points
    assert every_point(store) == expected
    store.close()
