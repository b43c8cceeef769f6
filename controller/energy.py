"""Energy per pole and day, and what presence dimming saved against an always-on light.

Energy comes from the lamp's ``energyConsumed`` readings (Wh per report period, metered where
the board can, else estimated from level and rated power and flagged so). The baseline is what
the same lamp would have used at full output through the hours of darkness (sunset to sunrise at
the pole, from the node's own astronomical clock), the usual reference for "dimming saves x%".

The baseline counts only the time the lamp reported for: a day before the street existed, a
node that was down, or the rest of tonight after a few minutes of data would otherwise count as
savings. Which hours reported comes from the hourly rollups (kept for ever); where a stretch of
reporting starts or stops, the raw readings (while kept) say the minute: each covers the
``dur`` seconds before its ``ts``.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

from controller.registry.models import Module, Pole
from controller.store.base import StreamKey, TimeSeriesStore
from spnode import astro

DAY = 86400
HOUR = 3600

Span = tuple[int, int]  # [start, end) in UTC epoch seconds


@dataclass
class DayEnergy:
    day: dt.date
    energy_wh: float
    baseline_wh: float
    dark_h: float  # hours of darkness in the whole day
    covered_h: float = 0.0  # hours of the day the lamps reported for

    def as_dict(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "energy_wh": round(self.energy_wh, 1),
            "baseline_wh": round(self.baseline_wh, 1),
            "dark_h": round(self.dark_h, 2),
            "covered_h": round(self.covered_h, 2),
        }


@dataclass
class PoleEnergy:
    days: list[DayEnergy]
    spans: list[Span]  # when the pole's lamps reported, merged


def _midnight(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


def _lit(day: dt.date, lat: float, lon: float) -> Span:
    """The part of the UTC day between sunrise and sunset (empty in polar night)."""
    start = _midnight(day)
    rise, sset = astro.sun_times(day.year, day.month, day.day, lat, lon)
    if rise is None or sset is None:
        polar = astro.polar(day.year, day.month, day.day, lat, lon)
        return (start, start) if polar == "night" else (start, start + DAY)
    return max(rise, start), min(sset, start + DAY)


def dark_seconds(a: int, b: int, lat: float, lon: float) -> int:
    """Seconds of darkness in [a, b) at that place (a and b within one UTC day)."""
    day = dt.datetime.fromtimestamp(a, dt.UTC).date()
    lo, hi = _lit(day, lat, lon)
    return (b - a) - max(0, min(b, hi) - max(a, lo))


def dark_hours(day: dt.date, lat: float, lon: float) -> float:
    """Hours of the UTC day outside sunrise..sunset (what an always-on lamp burns)."""
    start = _midnight(day)
    return dark_seconds(start, start + DAY, lat, lon) / HOUR


def merge(spans: list[Span]) -> list[Span]:
    out: list[Span] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        elif b > a:
            out.append((a, b))
    return out


def reported_spans(store: TimeSeriesStore, key: StreamKey, start: int, end: int) -> list[Span]:
    """When a stream reported: its hours with data, merged into stretches, with each stretch's
    first and last hour narrowed to what the raw readings cover (when they are still kept)."""
    hours = [a.bucket for a in store.aggregate(key, start, end, "hour")]
    out = []
    for a, b in merge([(h, h + HOUR) for h in hours]):
        first = store.query(key, a, a + HOUR, limit=1000)
        if first:
            a = min(p.ts - (p.dur or 0) for p in first)
        last = store.query(key, b - HOUR, b, limit=1000)
        if last:
            b = max(p.ts for p in last)
        out.append((a, b))
    return out


def _by_day(spans: list[Span]) -> list[Span]:
    """The spans cut at UTC midnights."""
    out = []
    for a, b in spans:
        while a < b:
            cut = min(b, a - a % DAY + DAY)
            out.append((a, cut))
            a = cut
    return out


def _lamp_streams(pole: Pole, lamp: Module) -> list[StreamKey]:
    nodes = [lamp.node] if lamp.node else [n.node for n in pole.nodes]
    return [StreamKey(pole.id, node, lamp.src or "lamp", "energyConsumed") for node in nodes]


def pole_energy(
    store: TimeSeriesStore,
    pole: Pole,
    first: dt.date,
    last: dt.date,
    now: float | None = None,
) -> PoleEnergy:
    """Energy, baseline and reported hours per UTC day from ``first`` to ``last``; nothing after
    ``now`` counts."""
    start = _midnight(first)
    end = min(_midnight(last) + DAY, int(time.time() if now is None else now))
    days = (last - first).days + 1
    used = [0.0] * days
    base = [0.0] * days
    covered = [0.0] * days
    all_spans: list[Span] = []
    for lamp in (m for m in pole.modules if m.type == "lighting"):
        spans: list[Span] = []
        for key in _lamp_streams(pole, lamp):
            for agg in store.aggregate(key, start, end, "day"):
                i = (agg.bucket - start) // DAY
                if 0 <= i < days:
                    used[i] += agg.mean * agg.count
            # a reading just after the range covers its last minutes
            spans += reported_spans(store, key, start, end + HOUR)
        spans = [(max(a, start), min(b, end)) for a, b in merge(spans) if b > start and a < end]
        all_spans += spans
        rated = lamp.rated_power_w or 0.0
        for a, b in _by_day(spans):
            i = (a - start) // DAY
            base[i] += rated * dark_seconds(a, b, pole.lat, pole.lon) / HOUR
    spans = merge(all_spans)
    for a, b in _by_day(spans):
        covered[(a - start) // DAY] += (b - a) / HOUR
    out = []
    for i in range(days):
        day = first + dt.timedelta(days=i)
        out.append(
            DayEnergy(day, used[i], base[i], dark_hours(day, pole.lat, pole.lon), covered[i])
        )
    return PoleEnergy(out, spans)


def _iso(t: int) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat().replace("+00:00", "Z")


def summary(poles: list[PoleEnergy], first: dt.date, last: dt.date) -> dict[str, Any]:
    """Totals and days over several poles (a group's), and the time they cover: the first and
    last reported moment and the hours in between that at least one lamp reported for."""
    start = _midnight(first)
    days = [
        DayEnergy(first + dt.timedelta(days=i), 0.0, 0.0, 0.0)
        for i in range((last - first).days + 1)
    ]
    for pe in poles:
        for acc, d in zip(days, pe.days, strict=True):
            acc.energy_wh += d.energy_wh
            acc.baseline_wh += d.baseline_wh
            acc.dark_h = max(acc.dark_h, d.dark_h)
    spans = merge([s for pe in poles for s in pe.spans])
    for a, b in _by_day(spans):
        days[(a - start) // DAY].covered_h += (b - a) / HOUR
    used = sum(d.energy_wh for d in days)
    base = sum(d.baseline_wh for d in days)
    return {
        "energy_wh": round(used, 1),
        "baseline_wh": round(base, 1),
        "saving_wh": round(base - used, 1),
        "saving_pct": round(100 * (base - used) / base, 1) if base else None,
        "covered_from": _iso(spans[0][0]) if spans else None,
        "covered_to": _iso(spans[-1][1]) if spans else None,
        "covered_h": round(sum(b - a for a, b in spans) / HOUR, 2),
        "days": [d.as_dict() for d in days],
    }
