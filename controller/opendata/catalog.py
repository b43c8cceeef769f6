"""What may be published, as a small in-memory SQLite database the SensorThings queries run in.

Built from the registry (poles, modules, owners) and the store's stream index, for one access
level: the public (open modules without personal data) or a token holder (adds restricted
modules, of its own owner when the account is owner-scoped). Closed modules and modules marked
as holding personal data never enter it, so no query, expand, download or map can reach them:
privacy is decided here once, not in every route. Motion streams enter only as counts per
interval (``counted``), and only ``presenceCount``; quantities unknown to the protocol do not
enter at all.

Rebuilt on the next request after owners, poles or modules change, by this process or any other
(the registry's stamp, read per request: controller/registry/stamp.py), so a module closed is
hidden at once; and when older than ``opendata_catalog_ttl_s``, for the store's side (new
streams, their time spans). The registry may be PostgreSQL and the store another file: the join
between them happens here, by stream id.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from controller.opendata.sql import sp_distance, sp_within
from controller.registry.db import Registry
from controller.registry.measures import owners_of, quantities
from controller.registry.models import Module, Owner, Pole
from controller.registry.stamp import read_stamp
from controller.settings import Settings
from controller.store.base import QueryTooExpensive, StreamKey, TimeSeriesStore
from protocols.quantity_info import INFO

SCHEMA = """
CREATE TABLE things (id TEXT PRIMARY KEY, name TEXT, description TEXT, properties TEXT);
CREATE TABLE locations (id TEXT PRIMARY KEY, name TEXT, description TEXT, encoding_type TEXT,
    lon REAL, lat REAL, properties TEXT);
CREATE TABLE historical_locations (id TEXT PRIMARY KEY, time INTEGER, thing_id TEXT);
CREATE TABLE features (id TEXT PRIMARY KEY, name TEXT, description TEXT, encoding_type TEXT,
    lon REAL, lat REAL, properties TEXT);
CREATE TABLE sensors (id TEXT PRIMARY KEY, name TEXT, description TEXT, encoding_type TEXT,
    metadata TEXT, properties TEXT);
CREATE TABLE observed_properties (id TEXT PRIMARY KEY, name TEXT, description TEXT,
    definition TEXT, properties TEXT);
CREATE TABLE datastreams (id INTEGER PRIMARY KEY, name TEXT, description TEXT,
    observation_type TEXT, unit_name TEXT, unit_symbol TEXT, unit_definition TEXT,
    thing_id TEXT, sensor_id TEXT, op_id TEXT, foi_id TEXT, phen_start INTEGER,
    phen_end INTEGER, lon REAL, lat REAL, properties TEXT, counted INTEGER);
CREATE INDEX datastreams_thing ON datastreams (thing_id);
CREATE INDEX datastreams_sensor ON datastreams (sensor_id);
CREATE INDEX datastreams_op ON datastreams (op_id);
CREATE INDEX datastreams_foi ON datastreams (foi_id);
"""

OM = "http://www.opengis.net/def/observationType/OGC-OM/2.0/"
UCUM = "https://ucum.org/ucum#"
SENSORS = {
    "SPS30": "Sensirion SPS30 particulate matter sensor (optical, laser scattering)",
    "SHT31": "Sensirion SHT31 temperature and humidity sensor",
    "SHT4x": "Sensirion SHT4x temperature and humidity sensor",
    "BME280": "Bosch BME280 temperature, humidity and pressure sensor",
    "NO2-B43F": "Alphasense NO2-B43F electrochemical nitrogen dioxide cell",
    "ICS-43434": "TDK ICS-43434 I2S MEMS microphone; A-weighted levels computed on the node",
    "LD2410": "HLK-LD2410 24 GHz presence radar; counts only",
    "PIR": "passive infrared motion detector; counts only",
}


@dataclass(frozen=True)
class Access:
    """Who asks: the public, or a token holder (owner None: every owner's restricted data)."""

    token: bool = False
    owner_id: int | None = None


PUBLIC = Access()


@dataclass(frozen=True)
class DsInfo:
    """What the fast paths (latest, CSV, GeoJSON, aggregates) need of a published Datastream."""

    id: int
    key: StreamKey
    pole: str
    q: str
    unit: str  # UCUM code (protocols/quantity_info.py)
    counted: bool
    module_id: int = 0  # the module it is published through (the register lists it there)


def publishable(module: Module, access: Access) -> bool:
    if module.personal_data:
        return False
    if module.openness == "open":
        return True
    if module.openness == "restricted" and access.token:
        return access.owner_id is None or access.owner_id == module.owner_id
    return False


class Catalog:
    """One built catalog: an in-memory database plus lookups for the fast paths."""

    def __init__(self) -> None:
        self.db = sqlite3.connect(":memory:", check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.create_function("sp_within", 3, sp_within, deterministic=True)
        self.db.create_function("sp_distance", 3, sp_distance, deterministic=True)
        self.db.executescript(SCHEMA)
        self.lock = threading.Lock()
        self.built = time.monotonic()
        self.stamp = -1  # the registry's stamp it was built at
        self.datastreams: dict[int, DsInfo] = {}
        self.by_pole: dict[str, list[int]] = {}
        self.poles: dict[str, dict[str, Any]] = {}  # id -> name, lon, lat, owner, district

    def rows(
        self, sql: str, params: Sequence[Any] = (), deadline: float | None = None
    ) -> list[sqlite3.Row]:
        """The query's rows; interrupted at ``deadline`` (time.monotonic()), for the lock it
        holds keeps every other request on this catalog waiting."""
        with self.lock:
            if deadline is None:
                return self.db.execute(sql, params).fetchall()
            # every 1,000 steps: some call a geometry function written in Python, which is slow
            self.db.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
            try:
                return self.db.execute(sql, params).fetchall()
            except sqlite3.OperationalError as e:
                if "interrupted" in str(e):
                    raise QueryTooExpensive("the request ran past its time budget") from e
                raise
            finally:
                self.db.set_progress_handler(None, 0)

    def counted(self) -> set[int]:
        return {i for i, d in self.datastreams.items() if d.counted}


def build(
    registry: Registry, store: TimeSeriesStore, settings: Settings, access: Access
) -> Catalog:
    cat = Catalog()
    with registry.session() as db:
        owners = {o.id: o for o in db.scalars(select(Owner))}
        poles = list(db.scalars(select(Pole).order_by(Pole.id)))
        modules = list(db.scalars(select(Module).order_by(Module.id)))
        db.expunge_all()
    index = store.stream_index()

    by_node: dict[tuple[str, str], list[tuple[str, frozenset[str], Module]]] = {}
    for m in modules:
        if m.node:
            mq = (m.src or "", quantities(m.type, m.attributes), m)
            by_node.setdefault((m.pole_id, m.node), []).append(mq)

    things, locs, hls, fois = [], [], [], []
    pole_pos: dict[str, tuple[float, float]] = {}
    for p in poles:
        owner = owners.get(p.owner_id)
        decimals = settings.opendata_location_decimals
        if owner is not None:
            decimals = settings.opendata_owner_location_decimals.get(owner.slug, decimals)
        lon, lat = round(p.lon, decimals), round(p.lat, decimals)
        pole_pos[p.id] = (lon, lat)
        props = {"district": p.district, "owner": owner.name if owner else None}
        name = p.name or p.id
        things.append((p.id, name, f"Smart street pole {p.id}", json.dumps(props)))
        where = f"Position of pole {p.id} (to {decimals} decimals)"
        locs.append((p.id, name, where, "application/geo+json", lon, lat, "{}"))
        fois.append((p.id, name, where, "application/geo+json", lon, lat, "{}"))
        hls.append((p.id, int(p.created_at), p.id))
        cat.poles[p.id] = {
            "name": name,
            "lon": lon,
            "lat": lat,
            "district": p.district,
            "owner": owner.name if owner else None,
        }

    sensors: dict[str, tuple[Any, ...]] = {}
    ops: dict[str, tuple[Any, ...]] = {}
    dss = []
    for key, info in sorted(index.items(), key=lambda kv: kv[1].id):
        # the stream's module measures its quantity: a node cannot publish a quantity through
        # another module by giving it that module's src
        mods = owners_of(by_node.get((key.pole, key.node), []), key.src, key.q)
        if not mods or key.pole not in pole_pos:
            continue
        if not all(publishable(m, access) for m in mods):
            continue
        m = mods[0]
        info_q = INFO.get(key.q)
        if info_q is None:
            continue
        counted = key.q == "presenceCount"
        if m.type == "motion" and not counted:
            continue  # motion modules publish counts, nothing else
        unit = info_q.unit
        sensor = str((m.attributes or {}).get("sensor") or f"{m.type}-module")
        if sensor not in sensors:
            sensors[sensor] = (
                sensor,
                sensor,
                SENSORS.get(sensor, f"Sensor of a {m.type} module"),
                "text/plain",
                SENSORS.get(sensor, f"{m.type} module"),
                json.dumps({"moduleType": m.type}),
            )
        if key.q not in ops:
            ops[key.q] = (
                key.q,
                key.q,
                f"{info_q.en} ({unit.name})",
                info_q.definition,
                json.dumps({"nl": info_q.nl, "group": info_q.group}, ensure_ascii=False),
            )
        lon, lat = pole_pos[key.pole]
        owner = owners.get(m.owner_id)
        ds_props: dict[str, Any] = {
            "pole": key.pole,
            "quantity": key.q,
            "moduleType": m.type,
            "owner": owner.name if owner else None,
            "purpose": m.purpose,
            "openness": m.openness,
            "license": settings.opendata_licence_url,
        }
        if counted:
            ds_props["aggregation"] = f"count per {settings.opendata_motion_interval_s} s"
        obs_type = OM + ("OM_CountObservation" if counted else "OM_Measurement")
        dss.append(
            (
                info.id,
                f"{key.q} at {cat.poles[key.pole]['name']}",
                f"{info_q.en} measured by the {m.type} module on pole {key.pole}",
                obs_type,
                unit.name,
                unit.symbol,
                UCUM + unit.ucum,
                key.pole,
                sensor,
                key.q,
                key.pole,
                info.first,
                info.last,
                lon,
                lat,
                json.dumps(ds_props),
                int(counted),
            )
        )
        cat.datastreams[info.id] = DsInfo(info.id, key, key.pole, key.q, unit.ucum, counted, m.id)
        cat.by_pole.setdefault(key.pole, []).append(info.id)

    ins = cat.db.executemany
    ins("INSERT INTO things VALUES (?,?,?,?)", things)
    ins("INSERT INTO locations VALUES (?,?,?,?,?,?,?)", locs)
    ins("INSERT INTO features VALUES (?,?,?,?,?,?,?)", fois)
    ins("INSERT INTO historical_locations VALUES (?,?,?)", hls)
    ins("INSERT INTO sensors VALUES (?,?,?,?,?,?)", list(sensors.values()))
    ins("INSERT INTO observed_properties VALUES (?,?,?,?,?)", list(ops.values()))
    ins("INSERT INTO datastreams VALUES (" + ",".join("?" * 17) + ")", dss)
    cat.db.commit()
    return cat


class Catalogs:
    """Built catalogs per access level, rebuilt when the registry's stamp moved or older than
    the TTL."""

    def __init__(self, registry: Registry, store: TimeSeriesStore, settings: Settings) -> None:
        self.registry = registry
        self.store = store
        self.settings = settings
        self._cache: dict[Access, Catalog] = {}
        self._lock = threading.Lock()

    def _fresh(self, cat: Catalog | None, stamp: int) -> bool:
        ttl = self.settings.opendata_catalog_ttl_s
        return cat is not None and cat.stamp == stamp and time.monotonic() - cat.built < ttl

    def get(self, access: Access) -> Catalog:
        # read before the build reads the registry: a change during the build moves the stamp
        # past the one recorded, and the next request builds again
        stamp = read_stamp(self.registry)
        cat = self._cache.get(access)
        if cat is not None and self._fresh(cat, stamp):
            return cat
        with self._lock:
            cat = self._cache.get(access)
            if cat is None or not self._fresh(cat, stamp):
                cat = build(self.registry, self.store, self.settings, access)
                cat.stamp = stamp
                if len(self._cache) > 64:
                    self._cache.clear()
                self._cache[access] = cat
        return cat
