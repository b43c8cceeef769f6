"""`make bench-scale`'s open-data figures: the queries of `make bench-api`, answered from
PostgreSQL holding the street `bench-scale` ingested (its history compacted into packed hours,
the run's points raw or packed as compaction left them).

A registry publishes the street's air and noise modules (as bench-api's street has air and
noise: no counted streams), the controller serves it with ``STREETPOLE_STORE=postgresql`` over
uvicorn on loopback, and many requests over one keep-alive connection time:

- ``pg_latest_all_p50_ms``: /opendata/v1/latest (every Datastream's latest value)
- ``pg_day_raw_p50_ms``: the 24 hours before the data's end of one random Datastream, as
  SensorThings Observations in one page (``phenomenonTime gt ... and phenomenonTime le ...``)
- ``pg_day_hourly_p50_ms``: one random pole's hourly aggregates over those 24 hours
"""

from __future__ import annotations

import random
import statistics
import time
from typing import TYPE_CHECKING

import httpx
import psycopg

from controller.app import create_app
from controller.gcpolicy import freeze_startup_objects
from controller.opendata.render import iso
from controller.registry.db import Registry
from controller.registry.models import Module, Owner, Pole
from controller.settings import Settings
from tests.harness.server import serve

if TYPE_CHECKING:
    from tests.bench.bench_scale import Bench

PUBLISHED = ("air", "noise")  # the modules bench-api's street has
REQUESTS = 200


def _p50(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def pg_open_data(b: Bench) -> dict[str, float]:
    """The figures on PostgreSQL; the same street in SQLite (``sqlite_bytes`` wrote it) is
    timed too, on the same machine at the same time, for comparison (printed only)."""
    with psycopg.connect(b.store_url) as conn:
        streams = conn.execute("SELECT pole, node, src FROM streams").fetchall()
        end = conn.execute("SELECT max(ts) FROM latest").fetchone()[0]  # type: ignore[index]
    poles = sorted({(p, n) for p, n, _ in streams})
    data = b.tmp / "opendata"
    data.mkdir()
    reg = Registry(f"sqlite:///{data / 'registry.db'}")
    with reg.session() as db:
        city = Owner(slug="city", name="City")
        db.add(city)
        db.flush()
        for i, (pid, node) in enumerate(poles):
            db.add(Pole(id=pid, lat=52 + i // 40 * 1e-3, lon=4.3 + i % 40 * 1e-3, owner_id=city.id))
            for src in PUBLISHED:
                db.add(Module(pole_id=pid, type=src, owner_id=city.id, node=node, src=src))
    reg.close()
    figures = {}
    sqlite = b.tmp / "sqlite" / "ts.db"
    stores = {"pg": {"store": "postgresql", "store_url": b.store_url}}
    if sqlite.exists():
        stores["sqlite"] = {"sqlite_path": sqlite}
    for name, store in stores.items():
        results = _measure(Settings(data_dir=data, _env_file=None, **store, **QUIET), end, poles)
        for k, v in results.items():
            q = statistics.quantiles(v, n=20)
            print(f"  {name} {k}: p50 {_p50(v):.1f} ms, p95 {q[18] * 1000:.1f} ms")
        if name == "pg":
            figures = {f"pg_{k}_p50_ms": _p50(v) for k, v in results.items()}
    return figures


QUIET = {
    "ingest_enabled": False,
    "dispatch_enabled": False,
    "opendata_rate_limit": False,
    "retention_raw_days": 0,
    "opendata_max_top": 10_000,
}


def _measure(settings: Settings, end: int, poles: list[tuple[str, str]]) -> dict[str, list[float]]:
    rng = random.Random(2)
    t0s, t1s = iso(end - 86400), iso(end)
    results: dict[str, list[float]] = {"latest_all": [], "day_raw": [], "day_hourly": []}
    app = create_app(settings)
    freeze_startup_objects()  # as `streetpole serve` does (controller/gcpolicy.py)
    with serve(app) as base, httpx.Client(base_url=base, timeout=60) as c:
        n_ds = len(c.get("/opendata/v1/latest").json()["value"])  # and the catalog is built
        ids = [d["@iot.id"] for d in c.get("/sta/v1.1/Datastreams?$top=10000").json()["value"]]
        assert n_ds == len(ids) > 0, (n_ds, len(ids))
        points = 0
        for i in range(REQUESTS):
            t = time.perf_counter()
            r = c.get("/opendata/v1/latest")
            results["latest_all"].append(time.perf_counter() - t)
            assert r.status_code == 200

            t = time.perf_counter()
            r = c.get(
                f"/sta/v1.1/Datastreams({rng.choice(ids)})/Observations",
                params={
                    "$filter": f"phenomenonTime gt {t0s} and phenomenonTime le {t1s}",
                    "$top": "1440",
                },
            )
            results["day_raw"].append(time.perf_counter() - t)
            assert r.status_code == 200, r.text[:200]
            points += len(r.json()["value"])

            t = time.perf_counter()
            r = c.get(
                "/opendata/v1/aggregates",
                params={
                    "pole": rng.choice(poles)[0],
                    "window": "hour",
                    "start": t0s,
                    "end": t1s,
                },
            )
            results["day_hourly"].append(time.perf_counter() - t)
            assert r.status_code == 200 and r.json()["value"][0]["value"], r.text[:200]
            if i == 0:
                for v in results.values():
                    v.clear()  # the first round fills caches
    print(
        f"open data ({settings.store}): {n_ds} Datastreams, a day of one holds"
        f" {points / REQUESTS:.0f} Observations on average, over {REQUESTS - 1} requests each"
    )
    return results
