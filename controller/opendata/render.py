"""Catalog rows and stored points to SensorThings JSON (self links, navigation links, $select)."""

from __future__ import annotations

import json
import sqlite3
import time
from functools import lru_cache
from typing import Any

from controller.opendata.entities import OBS_ID_BASE, RENDERED, TYPES, EntityType
from controller.opendata.query import BadQuery

ObsRow = tuple[int, int, float, int | None, str | None]


# Readings of a street share their minutes: a page of thousands of values has few distinct
# times, and formatting one costs ten times looking it up.
@lru_cache(maxsize=8192)
def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def key_repr(t: EntityType, ident: Any) -> str:
    if t.string_id:
        return "'" + str(ident).replace("'", "''") + "'"
    return str(ident)


def self_link(base: str, t: EntityType, ident: Any) -> str:
    return f"{base}/{t.plural}({key_repr(t, ident)})"


def _point(lon: float | None, lat: float | None) -> dict[str, Any] | None:
    if lon is None or lat is None:
        return None
    return {"type": "Point", "coordinates": [lon, lat]}


def catalog_props(t: EntityType, row: sqlite3.Row) -> dict[str, Any]:
    r = dict(row)
    out: dict[str, Any] = {}
    for name in RENDERED[t.name]:
        if name == "properties":
            out[name] = json.loads(r["properties"]) if r.get("properties") else {}
        elif name in ("location", "feature", "observedArea"):
            out[name] = _point(r["lon"], r["lat"])
        elif name == "encodingType":
            out[name] = r["encoding_type"]
        elif name == "observationType":
            out[name] = r["observation_type"]
        elif name == "unitOfMeasurement":
            out[name] = {
                "name": r["unit_name"],
                "symbol": r["unit_symbol"],
                "definition": r["unit_definition"],
            }
        elif name == "phenomenonTime" or name == "resultTime":
            start, end = r["phen_start"], r["phen_end"]
            out[name] = f"{iso(start)}/{iso(end)}" if start is not None and end else None
        elif name == "time":
            out[name] = iso(r["time"])
        else:
            out[name] = r[name]
    return out


def obs_props(row: ObsRow, counted: bool) -> dict[str, Any]:
    _stream, ts, v, dur, flags = row
    return {
        "phenomenonTime": f"{iso(ts - dur)}/{iso(ts)}" if dur else iso(ts),
        "resultTime": iso(ts),
        "result": int(v) if counted else v,
        "resultQuality": flags.split(",") if flags else None,
        "validTime": None,
        "parameters": None,
    }


def obs_id(row: ObsRow) -> int:
    return row[0] * OBS_ID_BASE + row[1]


def check_select(t: EntityType, select: list[str] | None) -> None:
    if select is None:
        return
    for s in select:
        known = ("id", "@iot.id", "@iot.selfLink", *RENDERED[t.name], *t.navs)
        if s not in known:
            raise BadQuery(f"$select: {t.name} has no property {s!r}")


def entity(
    t: EntityType,
    ident: Any,
    props: dict[str, Any],
    base: str,
    select: list[str] | None,
) -> dict[str, Any]:
    link = self_link(base, t, ident)
    out: dict[str, Any] = {}
    if select is None or "id" in select or "@iot.id" in select:
        out["@iot.id"] = ident
    if select is None or "@iot.selfLink" in select:
        out["@iot.selfLink"] = link
    for name, value in props.items():
        if select is None or name in select:
            out[name] = value
    for nav in t.navs:
        if select is None or nav in select:
            out[f"{nav}@iot.navigationLink"] = f"{link}/{nav}"
    return out


def observation(row: ObsRow, counted: bool, base: str, select: list[str] | None) -> dict[str, Any]:
    return entity(TYPES["Observation"], obs_id(row), obs_props(row, counted), base, select)
