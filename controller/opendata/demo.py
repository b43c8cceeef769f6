"""`make demo-data`: a deterministic sample street in the default stores, to try the open-data API
without poles: owners, poles around Rotterdam-Feijenoord with lighting, air, noise and motion
modules (open), a market party's NO2 research module (restricted), a camera (closed, personal
data) and a Wi-Fi counter (personal data), and a few days of readings with daily rhythms.

    python -m controller.opendata.demo [--poles 40] [--days 3] [--period 300]

Running it again adds nothing twice (poles by id, readings by stream and time). Readings end at
the start of the current hour, so the sample is always recent (within raw retention).
"""

from __future__ import annotations

import argparse
import math
import random
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from controller.opendata.render import iso
from controller.registry.db import Registry
from controller.registry.models import Module, Owner, Pole
from controller.settings import Settings
from controller.store import open_store
from controller.store.base import Batch, TimeSeriesStore


@dataclass(frozen=True)
class ModuleSpec:
    type: str
    src: str
    owner: str
    openness: str
    personal: bool
    sensor: str
    purpose: str
    quantities: tuple[str, ...]
    every: int  # on every n-th pole


MODULES = (
    ModuleSpec("lighting", "lamp", "city", "open", False, "lamp-driver", "street lighting",
               ("illuminanceLevel", "powerConsumption"), 1),
    ModuleSpec("air", "air", "city", "open", False, "SPS30", "air quality monitoring",
               ("pm25", "pm10", "temperature", "relativeHumidity"), 1),
    ModuleSpec("noise", "noise", "city", "open", False, "ICS-43434",
               "noise nuisance measurement", ("LAeq", "LAmax"), 2),
    ModuleSpec("motion", "motion", "city", "open", False, "LD2410",
               "presence-driven dimming", ("presenceCount",), 3),
    ModuleSpec("air", "no2", "airco", "restricted", False, "NO2-B43F",
               "NO2 sensor research (market party)", ("no2",), 4),
    ModuleSpec("camera", "cam", "city", "closed", True, "camera",
               "traffic safety (counts only leave the camera)", ("presenceCount",), 5),
    ModuleSpec("other", "wifi", "telco", "open", True, "wifi-counter",
               "crowd counting pilot", ("presenceCount",), 6),
)  # fmt: skip

OWNERS = (
    ("city", "Gemeente Rotterdam", "municipality", "opendata@rotterdam.example"),
    ("airco", "Air Co research", "market", "info@airco.example"),
    ("telco", "Telco small cells", "market", "noc@telco.example"),
)


def _value(q: str, ts: int, rng: random.Random, base: float) -> float:
    hour = (ts % 86400) / 3600
    day = math.sin((hour - 8) / 24 * 2 * math.pi)  # peaks mid-afternoon
    rush = math.exp(-(((hour - 8) / 1.5) ** 2)) + math.exp(-(((hour - 17.5) / 1.5) ** 2))
    night = hour < 6 or hour >= 21
    v: float
    if q == "pm25":
        v = base * (1 + 0.4 * rush) + rng.gauss(0, 1.5)
    elif q == "pm10":
        v = base * 1.6 * (1 + 0.4 * rush) + rng.gauss(0, 2.5)
    elif q == "temperature":
        v = 11 + 5 * day + rng.gauss(0, 0.3)
    elif q == "relativeHumidity":
        v = 78 - 15 * day + rng.gauss(0, 2)
    elif q == "no2":
        v = 18 + 25 * rush + rng.gauss(0, 3)
    elif q == "LAeq":
        v = 48 + 14 * rush + 4 * day + rng.gauss(0, 2)
    elif q == "LAmax":
        v = 62 + 14 * rush + 4 * day + rng.gauss(0, 4)
    elif q == "presenceCount":
        lam = 0.5 if night else 2 + 10 * rush
        v = float(sum(1 for _ in range(20) if rng.random() < lam / 20))
    elif q == "illuminanceLevel":
        v = (0.3 if 0 <= hour < 5 else 1.0) if night else 0.0
    elif q == "powerConsumption":
        v = (12.0 if 0 <= hour < 5 else 40.0) if night else 0.4
    else:
        v = rng.random()
    if q in ("pm25", "pm10", "no2", "presenceCount"):
        v = max(0.0, v)
    if q == "relativeHumidity":
        v = min(100.0, max(0.0, v))
    return round(v, 1) if q != "presenceCount" else v


def populate(
    registry: Registry,
    store: TimeSeriesStore,
    poles: int = 40,
    days: float = 3,
    period_s: int = 300,
    end: int | None = None,
    seed: int = 7,
) -> dict[str, Any]:
    """Registry entries and readings; returns what was made (ids by kind, for tests)."""
    rng = random.Random(seed)
    end = end if end is not None else int(time.time()) // 3600 * 3600
    start = end - int(days * 86400)
    made: dict[str, Any] = {"poles": [], "modules": []}
    with registry.session() as db:
        owner_ids = {}
        for slug, name, kind, contact in OWNERS:
            o = db.scalar(select(Owner).where(Owner.slug == slug))
            if o is None:
                o = Owner(slug=slug, name=name, kind=kind, contact=contact)
                db.add(o)
                db.flush()
            owner_ids[slug] = o.id
        for i in range(poles):
            pid = f"RTD-{i:04d}"
            made["poles"].append(pid)
            if db.get(Pole, pid) is not None:
                continue
            row, col = divmod(i, 8)
            db.add(
                Pole(
                    id=pid,
                    name=f"Pole {i}",
                    lat=51.8800 + row * 0.00045 + rng.uniform(-2e-5, 2e-5),
                    lon=4.5300 + col * 0.00070 + rng.uniform(-2e-5, 2e-5),
                    district="Feijenoord" if i % 2 else "IJsselmonde",
                    owner_id=owner_ids["city"],
                    created_at=float(start - 86400 * 30),
                )
            )
            for spec in MODULES:
                if i % spec.every:
                    continue
                db.add(
                    Module(
                        pole_id=pid,
                        type=spec.type,
                        owner_id=owner_ids[spec.owner],
                        purpose=spec.purpose,
                        openness=spec.openness,
                        personal_data=spec.personal,
                        node="n1",
                        src=spec.src,
                        attributes={"sensor": spec.sensor},
                    )
                )
    batches = []
    seq = 0
    for i in range(poles):
        pid = f"RTD-{i:04d}"
        base = 8 + rng.uniform(0, 8)
        readings = []
        for spec in MODULES:
            if i % spec.every:
                continue
            made["modules"].append((pid, spec.src, spec.openness, spec.personal))
            for q in spec.quantities:
                for ts in range(start + period_s, end + 1, period_s):
                    r: dict[str, Any] = {"q": q, "v": _value(q, ts, rng, base), "ts": ts}
                    r["src"] = spec.src
                    r["dur"] = period_s
                    if q == "LAeq" or q == "LAmax":
                        r["flags"] = ["indicative"]
                    readings.append(r)
        for k in range(0, len(readings), 5000):
            seq += 1
            batches.append(Batch(pid, "n1", 1, seq, readings[k : k + 5000]))
    result = store.write(batches)
    made["stored"] = result.stored
    made["start"], made["end"] = start, end
    return made


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--poles", type=int, default=40)
    ap.add_argument("--days", type=float, default=3)
    ap.add_argument("--period", type=int, default=300, help="seconds between readings")
    args = ap.parse_args(argv)
    settings = Settings()
    registry = Registry(settings.registry_url)
    store = open_store(settings)
    try:
        made = populate(registry, store, args.poles, args.days, args.period)
    finally:
        store.close()
        registry.close()
    span = f"{iso(made['start'])} to {iso(made['end'])}"
    print(
        f"demo data: {len(made['poles'])} poles, {len(made['modules'])} modules, "
        f"{made['stored']} new readings every {args.period} s from {span} (UTC) "
        f"in {settings.database_path} (registry {settings.registry_url})"
    )


if __name__ == "__main__":
    main()
