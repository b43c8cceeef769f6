"""Streets and poles: a graph of street vertices in local metres, and poles placed along it.

Two sources: ``grid(n)`` generates a street grid with ``n`` poles 30 m apart (a single straight
street for small ``n``), ``from_geojson(path)`` reads LineString streets (and optional Point
poles with an ``id`` property) in WGS84. Coordinates are projected to metres around the first
vertex (equirectangular: good to centimetres over a district)::

    lay = grid(10)                       # 10 poles on one street
    lay = from_geojson(DATA / "rotterdam-zuid.geojson", prefix="RZ-")
    lay.poles[0].id, lay.poles[0].lat, lay.poles[0].lon
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data"
# Rotterdam-Zuid (Feijenoord), where generated grids are put.
ORIGIN = (51.8880, 4.4960)
M_PER_DEG_LAT = 110_540.0
SPACING_M = 30.0  # a typical distance between street lights in a residential street
BLOCK = 3  # pole spacings per block in a generated grid


@dataclass(frozen=True)
class Pole:
    id: str
    x: float
    y: float
    lat: float
    lon: float


@dataclass
class Layout:
    """Street vertices (x, y in metres), undirected edges as adjacency, and the poles."""

    origin: tuple[float, float]
    vertices: list[tuple[float, float]] = field(default_factory=list)
    adj: list[list[int]] = field(default_factory=list)
    poles: list[Pole] = field(default_factory=list)

    def add_vertex(self, x: float, y: float) -> int:
        self.vertices.append((x, y))
        self.adj.append([])
        return len(self.vertices) - 1

    def add_edge(self, a: int, b: int) -> None:
        if a != b and b not in self.adj[a]:
            self.adj[a].append(b)
            self.adj[b].append(a)

    def to_latlon(self, x: float, y: float) -> tuple[float, float]:
        lat0, lon0 = self.origin
        lat = lat0 + y / M_PER_DEG_LAT
        lon = lon0 + x / (M_PER_DEG_LAT * 1.00707 * math.cos(math.radians(lat0)))
        return round(lat, 7), round(lon, 7)

    def to_xy(self, lat: float, lon: float) -> tuple[float, float]:
        lat0, lon0 = self.origin
        x = (lon - lon0) * M_PER_DEG_LAT * 1.00707 * math.cos(math.radians(lat0))
        return x, (lat - lat0) * M_PER_DEG_LAT

    def add_pole(self, pid: str, x: float, y: float) -> None:
        lat, lon = self.to_latlon(x, y)
        self.poles.append(Pole(pid, x, y, lat, lon))

    def edges(self) -> list[tuple[int, int]]:
        return [(a, b) for a, nbs in enumerate(self.adj) for b in nbs if a < b]

    @property
    def centre(self) -> tuple[float, float]:
        if not self.poles:
            return self.origin
        return (
            sum(p.lat for p in self.poles) / len(self.poles),
            sum(p.lon for p in self.poles) / len(self.poles),
        )


def _place_poles(lay: Layout, n: int | None, prefix: str, spacing: float) -> None:
    """Poles along every edge every ``spacing`` m (one per intersection), nearest the origin
    first when only ``n`` are wanted, so a partial grid stays one connected street."""
    spots: dict[tuple[int, int], tuple[float, float]] = {}
    for a, b in lay.edges():
        (xa, ya), (xb, yb) = lay.vertices[a], lay.vertices[b]
        length = math.hypot(xb - xa, yb - ya)
        k = max(1, round(length / spacing))
        for i in range(k + 1):
            x, y = xa + (xb - xa) * i / k, ya + (yb - ya) * i / k
            key = (round(x / (spacing / 2)), round(y / (spacing / 2)))
            spots.setdefault(key, (x, y))
    order = sorted(spots.values(), key=lambda p: (round(math.hypot(p[0], p[1]), 3), p[1], p[0]))
    for i, (x, y) in enumerate(order[:n] if n is not None else order):
        lay.add_pole(f"{prefix}{i + 1:04d}", x, y)


def grid(
    n: int,
    prefix: str = "SIM-",
    spacing: float = SPACING_M,
    origin: tuple[float, float] = ORIGIN,
) -> Layout:
    """``n`` poles on a generated street grid from ``origin`` (one straight street up to 16)."""
    if n < 1:
        raise ValueError("poles: at least one")
    lay = Layout(origin)
    block = spacing * BLOCK
    if n <= 16:
        cols, rows = max(2, math.ceil((n - 1) / BLOCK) + 1), 1
    else:
        k = 2
        while k * k + 2 * k * (k - 1) * (BLOCK - 1) < n:
            k += 1
        cols = rows = k
    ids = [[lay.add_vertex(c * block, r * block) for c in range(cols)] for r in range(rows)]
    for r in range(rows):
        for c in range(cols):
            if c + 1 < cols:
                lay.add_edge(ids[r][c], ids[r][c + 1])
            if r + 1 < rows:
                lay.add_edge(ids[r][c], ids[r + 1][c])
    _place_poles(lay, n, prefix, spacing)
    return lay


def from_geojson(
    path: Path, n: int | None = None, prefix: str = "GJ-", spacing: float = SPACING_M
) -> Layout:
    """Streets from LineString/MultiLineString features; poles from Point features with an
    ``id`` (else placed every ``spacing`` m along the streets). Shared coordinates join streets."""
    data: dict[str, Any] = json.loads(Path(path).read_text())
    lines: list[list[tuple[float, float]]] = []
    points: list[tuple[str, float, float]] = []
    for f in data.get("features", []):
        g = f.get("geometry") or {}
        kind, coords = g.get("type"), g.get("coordinates") or []
        if kind == "LineString":
            lines.append([(float(c[1]), float(c[0])) for c in coords])
        elif kind == "MultiLineString":
            lines.extend([(float(c[1]), float(c[0])) for c in part] for part in coords)
        elif kind == "Point":
            pid = str((f.get("properties") or {}).get("id", f"{prefix}{len(points) + 1:04d}"))
            points.append((pid, float(coords[1]), float(coords[0])))
    if not lines:
        raise ValueError(f"{path}: no LineString streets")
    lay = Layout((lines[0][0][0], lines[0][0][1]))
    index: dict[tuple[int, int], int] = {}
    for line in lines:
        prev = None
        for lat, lon in line:
            x, y = lay.to_xy(lat, lon)
            key = (round(x), round(y))  # metre grid: shared coordinates join streets
            v = index.get(key)
            if v is None:
                v = index[key] = lay.add_vertex(x, y)
            if prev is not None:
                lay.add_edge(prev, v)
            prev = v
    if points:
        for pid, lat, lon in points[:n] if n is not None else points:
            x, y = lay.to_xy(lat, lon)
            lay.add_pole(pid, x, y)
    else:
        _place_poles(lay, n, prefix, spacing)
    return lay


def load(spec: str, n: int | None, prefix: str, origin: tuple[float, float] = ORIGIN) -> Layout:
    """``grid`` (from ``origin``) or a path to a GeoJSON file (``n`` None: every pole of the
    file)."""
    if spec == "grid":
        return grid(n or 10, prefix, origin=origin)
    return from_geojson(Path(spec), n, prefix)
