"""Which quantities a module measures: what decides, for every reading, the module it belongs to
(and so its owner and openness), in ingest and in open data alike.

A module may list them in ``attributes["quantities"]`` (the sensor register's own words: a
camera that counts, a market party's NO2 cell under type ``air``); otherwise its type decides.
Types that measure nothing by themselves (EV charger, small cell, other) measure only what they
list. A reading whose quantity its module does not measure is not that module's, whatever
``src`` the node put on it (issue #18: noise published through an open air module).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
