"""Energy per pole and day, and what presence dimming saved against an always-on light.

Energy comes from the lamp's ``energyConsumed`` readings (Wh per report period, metered where
the board can, else estimated from level and rated power and flagged so). The baseline is what
the same lamp would have used at full output through every hour of darkness of that UTC day
(sunset to sunrise at the pole, from the node's own astronomical clock), the usual reference
for "dimming saves x%".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from controller.registry.models import Pole
from controller.store.base import StreamKey, TimeSeriesStore
from spnode import astro

DAY = 86400


@dataclass
class DayEnergy:
    day: dt.date
    energy_wh: float
    baseline_wh: float
    burning_h: float

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["day"] = self.day.isoformat()
        d["energy_wh"] = round(self.energy_wh, 1)
        d["baseline_wh"] = round(self.baseline_wh, 1)
        d["burning_h"] = round(self.burning_h, 2)
        return d


def dark_hours(day: dt.date, lat: float, lon: float) -> float:
    """Hours of the UTC day outside sunrise..sunset (what an always-on lamp burns)."""
    rise, sset = astro.sun_times(day.year, day.month, day.day, lat, lon)
    if rise is None or sset is None:
        polar = astro.polar(day.year, day.month, day.day, lat, lon)
        return 24.0 if polar == "night" else 0.0
    day_start = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())
    lit = max(0, min(sset, day_start + DAY) - max(rise, day_start))
    return float(DAY - lit) / 3600


def pole_energy(
    store: TimeSeriesStore, pole: Pole, first: dt.date, last: dt.date
) -> list[DayEnergy]:
    start = int(dt.datetime(first.year, first.month, first.day, tzinfo=dt.UTC).timestamp())
    end = int(dt.datetime(last.year, last.month, last.day, tzinfo=dt.UTC).timestamp()) + DAY
    lamps = [m for m in pole.modules if m.type == "lighting"]
    used: dict[int, float] = {}
    for m in lamps:
        nodes = [m.node] if m.node else [n.node for n in pole.nodes]
        for node in nodes:
            key = StreamKey(pole.id, node, m.src or "lamp", "energyConsumed")
            for agg in store.aggregate(key, start, end, "day"):
                used[agg.bucket] = used.get(agg.bucket, 0.0) + agg.mean * agg.count
    rated = sum(m.rated_power_w or 0.0 for m in lamps)
    out = []
    for i in range((last - first).days + 1):
        day = first + dt.timedelta(days=i)
        hours = dark_hours(day, pole.lat, pole.lon)
        out.append(DayEnergy(day, used.get(start + i * DAY, 0.0), rated * hours, hours))
    return out
