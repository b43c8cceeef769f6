"""A small demo street (open, restricted, closed and personal modules) behind a running API."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import astuple
from pathlib import Path
from typing import Any

import psycopg

from controller.opendata.demo import populate
from controller.registry.db import Registry
from controller.store.base import Batch, StreamKey
from controller.store.postgres import PostgresStore, libpq_url
from controller.store.sqlite import SqliteStore
from tests.harness.api import Api, running_api

QUIET = {"ingest_enabled": False, "dispatch_enabled": False, "opendata_rate_limit": False}


def make_street(
    data_dir: Path, poles: int = 12, days: float = 1, period_s: int = 300
) -> dict[str, Any]:
    data_dir.mkdir(parents=True, exist_ok=True)
    reg = Registry(f"sqlite:///{data_dir / 'registry.db'}")
    store = SqliteStore(data_dir / "streetpole.db")
    try:
        made = populate(reg, store, poles=poles, days=days, period_s=period_s)
        made["index"] = store.stream_index()
    finally:
        store.close()
        reg.close()
    return made


def hidden_ids(index: dict[StreamKey, Any]) -> dict[int, StreamKey]:
    """Stream ids that must never be public: restricted (no2), closed (cam), personal (wifi)."""
    return {info.id: k for k, info in index.items() if k.src in ("no2", "cam", "wifi")}


@contextmanager
def street_api(data_dir: Path, **settings: Any) -> Iterator[Api]:
    with running_api(data_dir, **{**QUIET, **settings}) as api:
        yield api


def copy_to_postgres(sqlite_path: Path, pg_url: str) -> PostgresStore:
    """The SQLite store's streams (with their ids, which are the Datastreams' ids) and points
    written into a PostgreSQL store, through its own write; returns the store, open."""
    src = SqliteStore(sqlite_path)
    try:
        index = src.stream_index()
        PostgresStore(pg_url).close()  # the schema
        with psycopg.connect(libpq_url(pg_url), autocommit=True) as conn:
            keys = sorted(index, key=lambda k: index[k].id)
            cols = [list(c) for c in zip(*(astuple(k) for k in keys), strict=True)]
            conn.execute(
                "INSERT INTO devices (pole, node) SELECT DISTINCT * FROM"
                " unnest(%s::text[], %s::text[]) ORDER BY 1, 2",
                cols[:2],
            )
            conn.execute(
                "INSERT INTO streams (id, pole, node, src, q, dev) SELECT k.*, d.id FROM"
                " unnest(%s::int[], %s::text[], %s::text[], %s::text[], %s::text[])"
                " AS k(id, pole, node, src, q) JOIN devices d USING (pole, node)",
                [[index[k].id for k in keys], *cols],
            )
            for table in ("streams", "devices"):
                conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"
                )
        dst = PostgresStore(pg_url)
        batches = []
        for seq, key in enumerate(keys):
            readings = [
                {
                    "q": key.q,
                    "src": key.src,
                    "ts": p.ts,
                    "v": p.v,
                    "dur": p.dur,
                    "flags": list(p.flags),
                }
                for p in src.query(key, 0, 2**40, limit=10**9)
            ]
            batches.append(Batch(key.pole, key.node, 1, seq, readings))
        dst.write(batches)
        return dst
    finally:
        src.close()
