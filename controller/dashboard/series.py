"""A pole's measurements for the dashboard: the streams an account may see, latest values and
chart series, straight from the time-series store.

An account sees a stream when it sees the module the stream belongs to (same pole, node and
``src``); an owner-scoped account sees only its own modules' streams, and streams that match no
registered module only on poles it owns. Unlike the open-data API this includes restricted and
closed modules of the caller's own owner: operators run them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from controller import policy
from controller.api.auth import Principal
from controller.registry.measures import owners_of, quantities
from controller.registry.models import Module, Pole
from controller.store.base import StreamKey, TimeSeriesStore
from protocols.quantity_info import INFO

Window = Literal["raw", "minute", "hour", "day"]
MAX_RAW_POINTS = 20_000
MAX_RANGE_S = 400 * 86400


@dataclass(frozen=True)
class Stream:
    key: StreamKey
    module: Module | None

    def describe(self) -> dict[str, Any]:
        m = self.module
        info = INFO.get(self.key.q)
        return {
            "q": self.key.q,
            "node": self.key.node,
            "src": self.key.src,
            # the same UCUM code and symbol as the open-data API (protocols/quantity_info.py)
            "unit": info.unit.ucum if info else "",
            "unitSymbol": info.unit.symbol if info else "",
            "module_id": m.id if m else None,
            "module_type": m.type if m else None,
            "openness": m.openness if m else None,
        }


def visible_streams(store: TimeSeriesStore, p: Principal, pole: Pole) -> list[Stream]:
    by_node: dict[str, list[tuple[str, frozenset[str], Module]]] = {}
    for mod in pole.modules:
        if mod.node:
            entry = (mod.src or "", quantities(mod.type, mod.attributes), mod)
            by_node.setdefault(mod.node, []).append(entry)
    owns_pole = policy.owns_pole(p, pole)
    out = []
    for key in sorted(store.streams()):
        if key.pole != pole.id:
            continue
        mods = owners_of(by_node.get(key.node, []), key.src, key.q)  # the module measuring it
        m = mods[0] if mods else None
        if m is None:
            if owns_pole:
                out.append(Stream(key, None))
        elif policy.sees_module(p, m):
            out.append(Stream(key, m))
    return out


def latest(store: TimeSeriesStore, streams: list[Stream]) -> list[dict[str, Any]]:
    got = store.latest([s.key for s in streams]) if streams else {}
    out = []
    for s in streams:
        pt = got.get(s.key)
        if pt is not None:
            out.append({**s.describe(), "ts": pt.ts, "v": pt.v, "dur": pt.dur})
    return out


def series(
    store: TimeSeriesStore, streams: list[Stream], start: int, end: int, window: Window
) -> list[dict[str, Any]]:
    """Points ``[ts, value]`` per stream; with a window, the mean per window (a sum for
    counts), stamped at the window's start."""
    out = []
    for s in streams:
        if window == "raw":
            pts = [[p.ts, p.v] for p in store.query(s.key, start, end, limit=MAX_RAW_POINTS)]
        else:
            summed = s.key.q in ("presenceCount", "energyConsumed")
            pts = [
                [a.bucket, a.mean * a.count if summed else a.mean]
                for a in store.aggregate(s.key, start, end, window)
            ]
        out.append({**s.describe(), "window": window, "points": pts})
    return out
