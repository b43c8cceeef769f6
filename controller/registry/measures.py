"""Which quantities a module measures, and so which module a reading belongs to (its owner and
openness), in ingest and in open data alike.

A module may list them in ``attributes["quantities"]`` (the sensor register's own words: a
camera that counts, a market party's NO2 cell under type ``air``); otherwise its type decides.
Types that measure nothing by themselves (EV charger, small cell, other) measure only what they
list. A reading whose quantity its module does not measure is not that module's, whatever
``src`` the node put on it (issue #18: noise published through an open air module).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from protocols.quantities import QUANTITIES


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


BY_TYPE: dict[str, frozenset[str]] = {
    "air": _names("pm1 pm25 pm10 no2 no2WE no2AE temperature relativeHumidity atmosphericPressure"),
    "noise": _names("LAeq LAmax LAmin LA10 LA90"),
    "lighting": _names("illuminanceLevel powerConsumption energyConsumed lampCurrent"),
    "motion": _names("presenceCount"),
    "camera": _names("presenceCount"),  # counts only ever leave a camera module
}


def quantities(module_type: str, attributes: Mapping[str, Any] | None) -> frozenset[str]:
    """What a module of ``module_type`` with ``attributes`` measures (known quantities only)."""
    declared = (attributes or {}).get("quantities")
    if isinstance(declared, list):
        return frozenset(q for q in declared if isinstance(q, str) and q in QUANTITIES)
    return BY_TYPE.get(module_type, frozenset())


T = TypeVar("T")


def owners_of(modules: Sequence[tuple[str, frozenset[str], T]], src: str, q: str) -> list[T]:
    """The modules of one node a reading ``(src, q)`` belongs to, from (src or "", quantities,
    module) of each: those with that src that measure ``q``; only if none has that src, those
    without a src that measure it (commissioning registers a node's modules without one). So a
    src names its module and cannot carry a quantity that module does not measure."""
    named = [(qs, m) for s, qs, m in modules if s and s == src]
    if named:
        return [m for qs, m in named if q in qs]
    return [m for s, qs, m in modules if not s and q in qs]
