"""Targets and geometry: which poles an override target names, which nodes drive a pole's
light, distances. Who may see or steer them is ``controller.policy``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.registry.models import GroupPole, Node, Pole


def point_in_polygon(lon: float, lat: float, ring: Sequence[Sequence[float]]) -> bool:
    """Even-odd rule on a GeoJSON ring of [lon, lat] pairs (street-sized areas: planar is fine)."""
    inside = False
    n = len(ring)
    j = n - 1
    for i in range(n):
        xi, yi = ring[i][0], ring[i][1]
        xj, yj = ring[j][0], ring[j][1]
        if (yi > lat) != (yj > lat) and lon < (xj - xi) * (lat - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def poles_in_target(db: Session, kind: str, target: dict[str, Any]) -> list[Pole]:
    """Poles named by an override target: a pole, a group, or an area (bbox or polygon)."""
    if kind == "pole":
        pole = db.get(Pole, target["pole"])
        return [pole] if pole is not None else []
    if kind == "group":
        return list(
            db.scalars(
                select(Pole)
                .join(GroupPole, GroupPole.pole_id == Pole.id)
                .where(GroupPole.group_id == target["group"])
                .order_by(Pole.id)
            )
        )
    if "bbox" in target:
        w, s, e, n = target["bbox"]
        return list(
            db.scalars(
                select(Pole)
                .where(Pole.lon >= w, Pole.lon <= e, Pole.lat >= s, Pole.lat <= n)
                .order_by(Pole.id)
            )
        )
    ring = target["polygon"]
    lons = [pt[0] for pt in ring]
    lats = [pt[1] for pt in ring]
    candidates = db.scalars(  # the bounding box first, in the database (index on lat, lon)
        select(Pole)
        .where(
            Pole.lon >= min(lons),
            Pole.lon <= max(lons),
            Pole.lat >= min(lats),
            Pole.lat <= max(lats),
        )
        .order_by(Pole.id)
    )
    return [p for p in candidates if point_in_polygon(p.lon, p.lat, ring)]


def light_nodes(pole: Pole) -> list[Node]:
    """The nodes that drive a pole's light: the node of its lighting module, else all its nodes."""
    served = {m.node for m in pole.modules if m.type == "lighting" and m.node}
    nodes = [n for n in pole.nodes if n.node in served]
    return nodes or list(pole.nodes)


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance, for choosing a node's neighbours."""
    r = 6_371_000.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))
