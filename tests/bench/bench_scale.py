"""`make bench-scale`: the PostgreSQL time-series store (issue #23) on the street of
`make bench-ingest`.

A PostgreSQL server is started here in a temporary folder with settings for a benchmark
(BENCH_SETTINGS: fsync and synchronous_commit stay on, so a stored batch is as durable as in
production; bigger shared buffers and WAL between checkpoints, pg_stat_statements to say where
the server's time goes). The street, its history and the queued stream are bench_ingest's
(600 nodes, ten readings a message, every node once a minute); the controller drains the
stream into PostgreSQL with ``STREETPOLE_STORE=postgresql``.

Figures (the last line, as issue #23 names them; each is added by a function in FIGURES, so
that the two-controller run and the open-data timings join the same line):
- ``pg_stored_msgs_per_s``: batches committed per second, first to last, one controller with
  two ingest processes.
- ``pg_bytes_per_reading``: after compaction of every closed hour (``PostgresStore.compact``),
  the on-disk size of every table of the store, partitions, indexes and TOAST included
  (pg_total_relation_size), over the points it holds (``PostgresStore.size``).
- ``sqlite_bytes_per_reading``: the same street's points (history plus the run's, written
  through the store's own write path) in the SQLite store: file plus WAL after a checkpoint,
  over the points.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from controller.broker import Broker, BrokerConfig, free_port
from controller.ingest.worker import leave_group
from controller.settings import Settings
from controller.store.base import Batch
from controller.store.postgres import PostgresStore
from controller.store.sqlite import SqliteStore
from tests.bench import bench_ingest, bench_scale_reads
from tests.harness.controller_proc import ControllerProcess
from tests.harness.postgres import Postgres
from tests.ingest_helpers import QUANTITIES, register, src_of, write_history

# A benchmark server: durable commits as in production (fsync, synchronous_commit on), memory
# and checkpoint spacing for a write-heavy run, statement statistics for the profile.
BENCH_SETTINGS = {
    "fsync": "on",
    "synchronous_commit": "on",
    "shared_buffers": "512MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "30min",
    "wal_compression": "off",
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.track": "all",
}
# The order of the last line; figures not measured (yet) are left out.
KEYS = (
    "pg_stored_msgs_per_s",
    "pg_two_controllers_msgs_per_s",
    "sqlite_bytes_per_reading",
    "pg_bytes_per_reading",
    "pg_latest_all_p50_ms",
    "pg_day_raw_p50_ms",
    "pg_day_hourly_p50_ms",
)


@dataclass
class Bench:
    """What a figure function gets: the arguments, a temporary folder, the broker and the
    PostgreSQL server, and what earlier figures left (``store_url``: the database the
    one-controller run filled, compacted once ``pg_bytes_per_reading`` ran)."""

    args: argparse.Namespace
    tmp: Path
    broker: Broker
    pg: Postgres
    store_url: str = ""
    notes: dict[str, str] = field(default_factory=dict)


def stored_batches(url: str) -> int:
    with psycopg.connect(url) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM batches").fetchone()[0])  # type: ignore[index]
        except psycopg.errors.UndefinedTable:
            return 0


def top_statements(url: str, n: int = 6) -> list[str]:
    """The statements the server spent most time on (pg_stat_statements), for the profile."""
    with psycopg.connect(url) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        rows = conn.execute(
            "SELECT total_exec_time, calls, rows, left(regexp_replace(query, '\\s+', ' ', 'g'), 90)"
            " FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT %s",
            (n,),
        ).fetchall()
    return [f"{t / 1000:7.1f} s {c:7d} calls {r:9d} rows  {q}" for t, c, r, q in rows]


def pg_stored(b: Bench) -> dict[str, float]:
    url = b.pg.create_database("scale").replace("postgresql+psycopg://", "postgresql://")
    b.store_url = url
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("SELECT pg_stat_statements_reset()")
    a = b.args
    rate = bench_ingest.controller_rate(
        b.broker,
        b.tmp / "one",
        a.messages,
        a.procs,
        a.connections,
        a.poles,
        a.history,
        a.ingest_processes,
        # the street runs half a day behind the clock (bench_ingest.NOW0): hours the run
        # writes into must not be compacted under it, as a street on time never sees
        env={
            "STREETPOLE_STORE": "postgresql",
            "STREETPOLE_STORE_URL": url,
            "STREETPOLE_STORE_COMPACT_AFTER_S": str(7 * 86400),
        },
        open_store=lambda: PostgresStore(url),
        stored=lambda: stored_batches(url),
        cpu_of={"postgresql": b.pg.pid()},
        # count(*) of batches every 20 ms took a fifth of the server's time in a run
        poll_s=0.5,
    )
    print(f"PostgreSQL stored: {rate:,.0f} msgs/s, {rate * 10:,.0f} points/s")
    print("server time by statement (pg_stat_statements):")
    for line in top_statements(url):
        print("  " + line)
    return {"pg_stored_msgs_per_s": rate}


def pg_bytes(b: Bench) -> dict[str, float]:
    store = PostgresStore(b.store_url)
    try:
        before = store.size()
        t = time.perf_counter()
        moved = store.compact(int(time.time()))
        took = time.perf_counter() - t
        with psycopg.connect(b.store_url, autocommit=True) as conn:
            conn.execute(
                "VACUUM ANALYZE"
            )  # the dead versions of latest's rows, as autovacuum would
        size = store.size()
    finally:
        store.close()
    points = size.pop("points")
    print(
        f"compaction: {moved:,} points in {took:.1f} s; raw before it:"
        f" {sum(v for k, v in before.items() if k != 'points') / max(1, before['points']):.1f}"
        " bytes/point"
    )
    print("  " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sorted(size.items()) if v))
    return {"pg_bytes_per_reading": sum(size.values()) / points}


def sqlite_bytes(b: Bench) -> dict[str, float]:
    a = b.args
    per = max(1, a.poles // a.procs // a.connections)
    names = [
        bench_ingest.pole_name(w, c, p)
        for w in range(a.procs)
        for c in range(a.connections)
        for p in range(per)
    ]
    minutes = a.history + a.messages // len(names)
    path = b.tmp / "sqlite" / "ts.db"
    store = SqliteStore(path)
    try:
        write_history(store, names, bench_ingest.NOW0 + 60 * (minutes - a.history), minutes)
        store.compact(int(time.time()))
    finally:
        store.close()
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        points = conn.execute("SELECT count(*) FROM readings").fetchone()[0]
    finally:
        conn.close()
    size = sum(p.stat().st_size for p in path.parent.iterdir() if p.name.startswith("ts.db"))
    return {"sqlite_bytes_per_reading": size / points}


def pg_two_controllers(b: Bench) -> dict[str, float]:
    """The same street and stream drained by two controllers: separate processes, each with its
    own session in ingest's shared subscription and one ingest process (the one-controller run
    has two), sharing a PostgreSQL registry and store, as issue #23's several controllers do."""
    a = b.args
    # pg_stored's controller left its sessions in ingest's group on this broker: mosquitto would
    # hand them their turns of the stream (kept until they expire), as `streetpole ingest-leave`
    # tells an operator retiring a controller
    one = Settings(_env_file=None, mqtt_url=b.broker.url, ingest_processes=a.ingest_processes)
    asyncio.run(leave_group(one))
    if b.store_url:  # the server's own after-work from pg_stored (autovacuum, a checkpoint) now
        with psycopg.connect(b.store_url, autocommit=True) as conn:
            conn.execute("VACUUM")
            conn.execute("CHECKPOINT")
    registry = b.pg.create_database("registry2")
    url = b.pg.create_database("scale2").replace("postgresql+psycopg://", "postgresql://")
    env = {
        "STREETPOLE_MQTT_URL": b.broker.url,
        "STREETPOLE_DATABASE_URL": registry,
        "STREETPOLE_STORE": "postgresql",
        "STREETPOLE_STORE_URL": url,
        "STREETPOLE_STORE_COMPACT_AFTER_S": str(7 * 86400),  # as in pg_stored
        "STREETPOLE_INGEST_PROCESSES": "1",
    }
    ctls = [
        ControllerProcess(b.tmp / f"two-{i}", {**env, "STREETPOLE_MQTT_CLIENT_ID": f"ctl-{i}"})
        for i in (1, 2)
    ]
    for c in ctls:  # registers the persistent sessions and their subscriptions
        c.start()
    for c in ctls:
        c.stop()
    per = max(1, a.poles // a.procs // a.connections)
    names = [
        bench_ingest.pole_name(w, c, p)
        for w in range(a.procs)
        for c in range(a.connections)
        for p in range(per)
    ]
    register(registry, names)
    if a.history:
        store = PostgresStore(url)
        try:
            write_history(store, names, bench_ingest.NOW0, a.history)
        finally:
            store.close()
    total = a.messages
    bench_ingest.run_publishers(b.broker.port, total, a.procs, a.connections, a.poles)
    before = stored_batches(url)
    for c in ctls:
        c.start(wait_ready=False)
    try:
        # counted every half second: polling count(*) faster took a share of the server's time
        while (first := stored_batches(url) - before) == 0:
            time.sleep(0.05)
        t0 = time.perf_counter()
        pids = {f"controller {i}": c.proc.pid for i, c in enumerate(ctls, 1) if c.proc}
        pids |= {"broker": b.broker.pid or 0, "postgresql": b.pg.pid()}
        cpu0 = {k: bench_ingest.cpu_seconds(p) for k, p in pids.items()}
        while (n := stored_batches(url) - before) < total:
            if time.perf_counter() - t0 > 300:
                raise TimeoutError(f"only {n} of {total} stored")
            time.sleep(0.5)
        rate = (total - first) / (time.perf_counter() - t0)
        cost = {
            k: (bench_ingest.cpu_seconds(p) - cpu0[k]) / (total - first) * 1e6
            for k, p in pids.items()
        }
    finally:
        for c in ctls:
            c.stop()
    print(", ".join(f"{k} CPU {us:.1f} us/msg" for k, us in cost.items()))
    print(f"two controllers stored: {rate:,.0f} msgs/s, {rate * 10:,.0f} points/s")
    return {"pg_two_controllers_msgs_per_s": rate}


def store_cpu(b: Bench) -> dict[str, float]:
    """The store alone, in this process (``--store-only``): the street's messages written with
    ``PostgresStore.write``, ``--write-messages`` a write, and the CPU a message of this
    process and of its server backend: steadier than rates on a shared machine, and it splits
    the cost between Python and the server."""
    a = b.args
    url = b.pg.create_database("storecpu").replace("postgresql+psycopg://", "postgresql://")
    store = PostgresStore(url)
    backend = store.writer_backend_pid()
    names = [f"p{i}" for i in range(a.poles)]
    per = max(1, a.write_messages // len(names))  # minutes a write
    minutes = a.messages // len(names)

    def street(first: int) -> list[Batch]:
        return [
            Batch(pole, "n1", 1, m, _readings(bench_ingest.NOW0 + 60 * m, m))
            for m in range(first, first + per)
            for pole in names
        ]

    store.write(street(0))  # streams and nodes made
    writes = [street(m) for m in range(per, minutes, per)]
    n = sum(len(w) for w in writes)
    # as ingest does (controller/gcpolicy.py): the messages built here are not the store's cost
    gc.freeze()
    c0, s0 = time.process_time(), bench_ingest.cpu_seconds(backend)
    for w in writes:
        store.write(w)
    client = (time.process_time() - c0) / n * 1e6
    server = (bench_ingest.cpu_seconds(backend) - s0) / n * 1e6
    store.close()
    print(
        f"store alone: {n:,} messages, {per * len(names):,} a write: write() CPU {client:.1f}"
        f" us/msg, server backend CPU {server:.1f} us/msg"
    )
    return {}


def _readings(ts: int, seq: int) -> list[dict[str, object]]:
    return [
        {"ts": ts, "q": q, "v": 0.1 * (seq % 7), "dur": 60, "src": src_of(q)} for q in QUANTITIES
    ]


# Each adds its figures (the open-data timings read what pg_stored and sqlite_bytes left).
FIGURES: list[Callable[[Bench], dict[str, float]]] = [
    pg_stored,
    pg_two_controllers,
    pg_bytes,
    sqlite_bytes,
    bench_scale_reads.pg_open_data,
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=180_000)
    parser.add_argument("--procs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--poles", type=int, default=600, help="nodes in the street")
    parser.add_argument("--history", type=int, default=120, help="readings per stream before")
    parser.add_argument("--ingest-processes", type=int, default=2)
    parser.add_argument(
        "--store-only", action="store_true", help="only the store's CPU a message, in process"
    )
    parser.add_argument("--write-messages", type=int, default=12_000, help="for --store-only")
    parser.add_argument("--only", help="one figure's function, e.g. pg_two_controllers")
    args = parser.parse_args()
    args.messages -= args.messages % args.procs
    assert shutil.which("mosquitto_sub"), "mosquitto_sub missing: make deps"
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        broker = Broker(tmp / "broker", BrokerConfig(port=free_port()))
        pg = Postgres(BENCH_SETTINGS)
        broker.start()
        pg.start()
        try:
            print("PostgreSQL settings: " + " ".join(f"{k}={v}" for k, v in BENCH_SETTINGS.items()))
            bench = Bench(args, tmp, broker, pg)
            chosen = [f for f in FIGURES if f.__name__ == args.only] if args.only else FIGURES
            for figure in [store_cpu] if args.store_only else chosen:
                figures.update(figure(bench))
            if broker.dropped_messages_logged():
                print("WARNING: the broker logged dropped messages", file=sys.stderr)
        finally:
            pg.stop()
            broker.stop()
    print(
        " ".join(f"{k}={figures[k]:.{0 if k.endswith('_s') else 1}f}" for k in KEYS if k in figures)
    )


if __name__ == "__main__":
    main()
