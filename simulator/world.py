"""The world around the poles: people moving along the streets, daylight, weather, air and
noise. Pure and deterministic: the same layout, seed and start give the same event sequence, no
matter how fast or how jittery the real time that drives it (it advances in fixed steps)::

    w = World(layout, seed=1, start=1795892400)
    events = w.advance_to(w.start + 3600)   # [(t, kind, pole index, walker id), ...]
    w.env(pole_index, t)                     # temperature, humidity, PM, noise there and then

Event kinds: ``enter`` (someone came within the PIR's range), ``motion`` (the PIR fires: on the
first entry and every ``RETRIGGER_S`` while someone is in range), ``reach`` (someone passed the
pole: their closest approach), ``leave``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import NamedTuple

from simulator.layout import Layout
from spnode import astro  # the node's own sun-time code, so world and firmware agree on dusk

STEP_S = 0.5
PIR_RANGE_M = 9.0  # a PIR on a 6 m pole sees a circle of about this radius on the ground
REACH_M = 6.0  # passing closer than this counts as reaching the pole
RETRIGGER_S = 2.0  # a PIR's output pulses again while motion continues

# kind: (mean speed m/s, spread, share of trips)
KINDS: dict[str, tuple[float, float, float]] = {
    "pedestrian": (1.4, 0.25, 0.6),
    "cyclist": (4.5, 0.8, 0.32),
    "scooter": (7.0, 1.0, 0.08),
}
# Relative trips per hour of local day (hour 0..23): a quiet night, rush hours at 8 and 17-18.
RHYTHM = (
    0.06, 0.04, 0.03, 0.03, 0.04, 0.1, 0.3, 0.7, 1.0, 0.7, 0.5, 0.55,
    0.6, 0.55, 0.5, 0.6, 0.85, 1.0, 0.9, 0.6, 0.45, 0.35, 0.2, 0.1,
)  # fmt: skip
TRIPS_PER_POLE_HOUR = 4.0  # at the peak hour: trips that start near each pole


class Event(NamedTuple):
    t: float
    kind: str
    pole: int
    walker: int


class Env(NamedTuple):
    temp_c: float
    rh: float
    pm25: float
    pm10: float
    noise_dba: float


@dataclass
class Walker:
    id: int
    kind: str
    speed: float
    a: int  # from vertex
    b: int  # to vertex
    s: float  # metres along a->b
    left_m: float  # trip distance still to go
    near: dict[int, list[float]] = field(default_factory=dict)  # pole -> [last d, reached]


class World:
    def __init__(
        self,
        layout: Layout,
        seed: int = 1,
        start: float = 0.0,
        traffic: float = 1.0,
        utc_offset_h: float = 1.0,
    ) -> None:
        self.layout = layout
        self.seed = seed
        self.rng = random.Random(seed)
        self.start = float(start)
        self.t = float(start)
        self.traffic = traffic
        self.utc_offset_h = utc_offset_h  # for the daily rhythm (CET)
        self.walkers: list[Walker] = []
        self.next_id = 1
        self.trips = 0
        self.kind_of: dict[int, str] = {}  # walker id -> kind (for the report's service level)
        self.occupancy = [0] * len(layout.poles)
        self._last_motion = [-1e18] * len(layout.poles)
        self._cell = PIR_RANGE_M * 2
        self._grid: dict[tuple[int, int], list[int]] = {}
        for i, p in enumerate(layout.poles):
            self._grid.setdefault(self._key(p.x, p.y), []).append(i)
        starts = [v for v, nbs in enumerate(layout.adj) if nbs]
        self._starts = starts or [0]
        lat, lon = layout.centre
        self._latlon = (lat, lon)
        self._sun: dict[int, tuple[int | None, int | None]] = {}
        # per-pole offsets of the environment models (a busier corner, a sheltered spot)
        r = random.Random(seed * 7919 + 17)
        self._offsets = [
            (r.uniform(-0.6, 0.6), r.uniform(-3, 3), r.uniform(0.8, 1.3), r.uniform(-4, 4))
            for _ in layout.poles
        ]

    def _key(self, x: float, y: float) -> tuple[int, int]:
        return (math.floor(x / self._cell), math.floor(y / self._cell))

    # ---- time and light ----------------------------------------------------------------------
    def local_hour(self, t: float) -> float:
        return ((t / 3600.0 + self.utc_offset_h) % 24.0 + 24.0) % 24.0

    def dark(self, t: float) -> bool:
        """Is the sun down (sunset to sunrise, as the node's astronomical clock sees it)?"""
        day = int(t // 86400)
        times = self._sun.get(day)
        if times is None:
            y, m, d = _civil(day)
            rise, set_ = astro.sun_times(y, m, d, *self._latlon)
            times = self._sun[day] = (rise, set_)
        rise, set_ = times
        if rise is None or set_ is None:
            return bool(astro.polar(*_civil(day), *self._latlon) == "night")
        return not (rise <= t < set_)

    # ---- people ------------------------------------------------------------------------------
    def _spawn(self) -> None:
        rng = self.rng
        roll = rng.random()
        acc = 0.0
        kind = "pedestrian"
        for k, (_, _, share) in KINDS.items():
            acc += share
            if roll < acc:
                kind = k
                break
        mean, spread, _ = KINDS[kind]
        a = self._starts[rng.randrange(len(self._starts))]
        b = self.layout.adj[a][rng.randrange(len(self.layout.adj[a]))]
        speed = max(0.5, rng.gauss(mean, spread))
        trip = rng.uniform(150, 1200) if kind == "pedestrian" else rng.uniform(400, 3000)
        self.walkers.append(Walker(self.next_id, kind, speed, a, b, 0.0, trip))
        self.kind_of[self.next_id] = kind
        self.next_id += 1
        self.trips += 1

    def _move(self, w: Walker, dist: float) -> bool:
        """Move along the streets; False when the trip is over."""
        verts, adj, rng = self.layout.vertices, self.layout.adj, self.rng
        w.left_m -= dist
        if w.left_m <= 0:
            return False
        while True:
            (xa, ya), (xb, yb) = verts[w.a], verts[w.b]
            length = math.hypot(xb - xa, yb - ya)
            if w.s + dist < length:
                w.s += dist
                return True
            dist -= length - w.s
            nbs = adj[w.b]
            options = [v for v in nbs if v != w.a] or nbs
            w.a, w.b, w.s = w.b, options[rng.randrange(len(options))], 0.0

    def _pos(self, w: Walker) -> tuple[float, float]:
        (xa, ya), (xb, yb) = self.layout.vertices[w.a], self.layout.vertices[w.b]
        length = math.hypot(xb - xa, yb - ya) or 1.0
        f = w.s / length
        return xa + (xb - xa) * f, ya + (yb - ya) * f

    def step(self, out: list[Event]) -> None:
        """Advance one STEP_S and append what happened to ``out``."""
        t = self.t + STEP_S
        self.t = t
        rng = self.rng
        rate = (
            TRIPS_PER_POLE_HOUR
            * len(self.layout.poles)
            * RHYTHM[int(self.local_hour(t))]
            * self.traffic
        )
        expected = rate * STEP_S / 3600.0
        while expected > 0:  # Bernoulli slices: deterministic and cheap
            if rng.random() < min(expected, 1.0):
                self._spawn()
            expected -= 1.0
        poles = self.layout.poles
        occ = [0] * len(poles)
        alive: list[Walker] = []
        for w in self.walkers:
            going = self._move(w, w.speed * STEP_S)
            x, y = self._pos(w)
            kx, ky = self._key(x, y)
            here: set[int] = set()
            if going:
                for dx in (-1, 0, 1):
                    for dy in (-1, 0, 1):
                        for i in self._grid.get((kx + dx, ky + dy), ()):
                            p = poles[i]
                            d = math.hypot(p.x - x, p.y - y)
                            if d > PIR_RANGE_M:
                                continue
                            here.add(i)
                            occ[i] += 1
                            st = w.near.get(i)
                            if st is None:
                                w.near[i] = [d, 0.0]
                                out.append(Event(t, "enter", i, w.id))
                                continue
                            if not st[1] and d > st[0] and st[0] <= REACH_M:
                                st[1] = 1.0
                                out.append(Event(t, "reach", i, w.id))
                            st[0] = d
            for i in sorted(set(w.near) - here):
                st = w.near.pop(i)
                if not st[1] and st[0] <= REACH_M:
                    out.append(Event(t, "reach", i, w.id))
                out.append(Event(t, "leave", i, w.id))
            if going:
                alive.append(w)
        self.walkers = alive
        for i, n in enumerate(occ):
            if n and (not self.occupancy[i] or t - self._last_motion[i] >= RETRIGGER_S - 1e-9):
                self._last_motion[i] = t
                out.append(Event(t, "motion", i, 0))
        self.occupancy = occ

    def advance_to(self, t: float) -> list[Event]:
        out: list[Event] = []
        while self.t + STEP_S <= t:
            self.step(out)
        return out

    # ---- weather, air and noise --------------------------------------------------------------
    def env(self, i: int, t: float) -> Env:
        """Smooth daily cycles plus rush-hour PM and traffic noise at pole ``i``."""
        h = self.local_hour(t)
        dt_off, rh_off, pm_fac, noise_off = self._offsets[i]
        day = math.sin(2 * math.pi * (h - 9.0) / 24.0)  # warmest mid-afternoon
        temp = 9.0 + 4.0 * day + dt_off
        rh = max(35.0, min(99.0, 78.0 - 14.0 * day + rh_off))
        rush = math.exp(-(((h - 8.0) / 1.2) ** 2)) + 0.8 * math.exp(-(((h - 17.5) / 1.5) ** 2))
        pm25 = (7.0 + 10.0 * rush) * pm_fac
        if rh > 80:  # hygroscopic growth: low-cost optical sensors read high in humid air
            pm25 *= 1.0 + 0.03 * (rh - 80.0)
        pm10 = pm25 * 1.7 + 3.0
        noise = 42.0 + 18.0 * RHYTHM[int(h)] + noise_off
        return Env(round(temp, 2), round(rh, 1), round(pm25, 2), round(pm10, 2), round(noise, 1))


def _civil(day: int) -> tuple[int, int, int]:
    """(year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm)."""
    z = day + 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + (m <= 2), m, d)
