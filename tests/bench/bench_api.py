"""`make bench-api`: open-data API latency on a big street.

Builds (or reuses, with --dir) a SQLite store of 1,000 poles with 7 days of one-minute data
(pm25 and LAeq per pole: 2,000 Datastreams, about 20 million readings; bulk-loaded with the
store's own schema), then serves the controller with uvicorn on loopback and measures, with many
requests over one keep-alive connection:

- latest_all: the latest value of every Datastream (/opendata/v1/latest)
- day_raw: 24 hours of Observations of one Datastream (SensorThings, 1,440 Observations in one
  page, full JSON), a random Datastream and day each time
- day_hourly: one day of hourly aggregates for one pole (/opendata/v1/aggregates)

Then, with the controller in a process of its own, 200 concurrent operator requests from one
read-only account (pole, node and alarm lists, who-am-I) while a separate client times /healthz:
errors are 5xx answers other than 503 with Retry-After (the refusal allowed under overload) and
requests that got no answer.

Last lines: latest_all_p50_ms=<n> day_raw_p50_ms=<n> day_hourly_p50_ms=<n>
            concurrent_200_errors=<n> healthz_p99_ms=<n>
"""

from __future__ import annotations

import argparse
import math
import random
import secrets
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from controller.app import create_app
from controller.opendata.render import iso
from controller.registry.accounts import create_token, create_user
from controller.registry.db import Registry
from controller.registry.models import Module, Owner, Pole
from controller.settings import Settings
from controller.store.sqlite import SqliteStore
from tests.harness.controller_proc import ControllerProcess
from tests.harness.load import burst
from tests.harness.server import serve

QUANTITIES = (("air", "pm25"), ("noise", "LAeq"))


def build(data: Path, poles: int, days: int, end: int) -> None:
    if (data / "built").exists():
        return
    reg = Registry(f"sqlite:///{data / 'registry.db'}")
    with reg.session() as db:
        city = Owner(slug="city", name="City")
        db.add(city)
        db.flush()
        for i in range(poles):
            pid = f"P{i:04d}"
            db.add(Pole(id=pid, lat=52 + i // 40 * 1e-3, lon=4.3 + i % 40 * 1e-3, owner_id=city.id))
            for src, _q in QUANTITIES:
                db.add(Module(pole_id=pid, type=src, owner_id=city.id, node="n1", src=src))
    reg.close()
    SqliteStore(data / "streetpole.db", retention_raw_days=0).close()  # the schema
    db3 = sqlite3.connect(data / "streetpole.db")
    db3.execute("PRAGMA journal_mode=WAL")
    db3.execute("PRAGMA synchronous=OFF")
    # bulk load; latest is filled once at the end
    sid = 0
    start = end - days * 86400
    rng = random.Random(1)
    for i in range(poles):
        for _src, q in QUANTITIES:
            sid += 1
            db3.execute(
                "INSERT INTO streams (id, pole, node, src, q) VALUES (?,?,?,?,?)",
                (sid, f"P{i:04d}", "n1", _src, q),
            )
            base = 10 + rng.random() * 10 if q == "pm25" else 50 + rng.random() * 10
            db3.executemany(
                "INSERT INTO readings (stream, ts, v, dur) VALUES (?,?,?,60)",
                (
                    (sid, ts, round(base + 5 * math.sin(ts / 7200) + rng.random(), 1))
                    for ts in range(start + 60, end + 1, 60)
                ),
            )
        if i % 100 == 99:
            db3.commit()
            print(f"  {i + 1} poles loaded", flush=True)
    db3.execute(
        "INSERT INTO latest (stream, ts, v, dur, flags) SELECT r.stream, r.ts, r.v, r.dur, NULL "
        "FROM streams s JOIN readings r ON r.stream = s.id "
        "AND r.ts = (SELECT max(ts) FROM readings WHERE stream = s.id)"
    )
    db3.commit()
    db3.close()
    (data / "built").write_text(str(end))


def p50(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", type=Path, help="keep (and reuse) the built store here")
    ap.add_argument("--poles", type=int, default=1000)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--requests", type=int, default=200)
    args = ap.parse_args()
    tmp = None
    if args.dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench-api-")
        args.dir = Path(tmp.name)
    args.dir.mkdir(parents=True, exist_ok=True)
    end = int(time.time()) // 60 * 60
    t0 = time.perf_counter()
    build(args.dir, args.poles, args.days, end)
    end = int((args.dir / "built").read_text())
    print(f"store ready in {time.perf_counter() - t0:.1f} s ({args.dir})", flush=True)
    settings = Settings(
        data_dir=args.dir,
        _env_file=None,
        ingest_enabled=False,
        dispatch_enabled=False,
        opendata_rate_limit=False,
        retention_raw_days=0,
        opendata_max_top=10_000,
    )
    rng = random.Random(2)
    n_ds = args.poles * len(QUANTITIES)
    with serve(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as c:
        assert len(c.get("/opendata/v1/latest").json()["value"]) == n_ds  # warm the catalog
        results: dict[str, list[float]] = {"latest_all": [], "day_raw": [], "day_hourly": []}
        for i in range(args.requests):
            t = time.perf_counter()
            r = c.get("/opendata/v1/latest")
            results["latest_all"].append(time.perf_counter() - t)
            assert r.status_code == 200

            ds = rng.randrange(1, n_ds + 1)
            day_end = end - rng.randrange(0, args.days - 1) * 86400
            t0s, t1s = iso(day_end - 86400), iso(day_end)
            t = time.perf_counter()
            r = c.get(
                f"/sta/v1.1/Datastreams({ds})/Observations",
                params={
                    "$filter": f"phenomenonTime gt {t0s} and phenomenonTime le {t1s}",
                    "$top": "1440",
                },
            )
            results["day_raw"].append(time.perf_counter() - t)
            assert r.status_code == 200 and len(r.json()["value"]) == 1440, r.text[:200]

            pole = f"P{rng.randrange(args.poles):04d}"
            t = time.perf_counter()
            r = c.get(
                "/opendata/v1/aggregates",
                params={"pole": pole, "window": "hour", "start": t0s, "end": t1s},
            )
            results["day_hourly"].append(time.perf_counter() - t)
            assert r.status_code == 200 and len(r.json()["value"][0]["value"]) >= 24
            if i == 0:
                for k in results:
                    results[k].clear()  # first round: caches
    for k, v in results.items():
        q = statistics.quantiles(v, n=20)
        print(f"{k}: p50 {p50(v):.1f} ms, p95 {q[18] * 1000:.1f} ms over {len(v)} requests")
    print(
        f"latest_all_p50_ms={p50(results['latest_all']):.1f} "
        f"day_raw_p50_ms={p50(results['day_raw']):.1f} "
        f"day_hourly_p50_ms={p50(results['day_hourly']):.1f}"
    )
    reg = Registry(f"sqlite:///{args.dir / 'registry.db'}")
    create_user(reg, "bench-viewer", secrets.token_urlsafe(12), "viewer")
    token = create_token(reg, "bench-viewer", "bench")
    reg.close()
    ctl = ControllerProcess(
        args.dir,
        {
            "STREETPOLE_INGEST_ENABLED": "false",
            "STREETPOLE_DISPATCH_ENABLED": "false",
            "STREETPOLE_RETENTION_RAW_DAYS": "0",
        },
    )
    ctl.start()
    try:
        paths = ["/api/poles?limit=50", "/api/nodes", "/api/alarms", "/api/auth/me"]
        b = burst(ctl.url, token, paths, 200)
    finally:
        ctl.stop()
    print(
        f"concurrent 200: {b.statuses.count(200)} answered, {b.refused} refused (503), "
        f"{len(b.failures)} errors in {b.wall_s:.1f} s; /healthz max "
        f"{max(b.healthz_s, default=0) * 1000:.0f} ms over {len(b.healthz_s)} probes"
    )
    for f in b.failures[:5]:
        print(f"  error: {f}")
    print(f"concurrent_200_errors={len(b.failures)} healthz_p99_ms={b.healthz_p99_ms:.0f}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
