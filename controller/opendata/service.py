"""The open-data service object: catalogs, token lookups and the fast paths shared by the routes
(latest values, aggregates, CSV rows, GeoJSON, the sensor register)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select

from controller.opendata.access import Tokens
from controller.opendata.catalog import Access, Catalog, Catalogs, DsInfo
from controller.opendata.query import BadQuery, parse_time
from controller.opendata.render import iso
from controller.registry.models import Module, Owner, Pole
from controller.state import AppState
from controller.store.base import ObservationQuery, Point, Window
from protocols.quantity_info import INFO, api_round


def symbol(q: str) -> str:
    """The unit symbol for people next to the UCUM code every API gives (``unit``)."""
    info = INFO.get(q)
    return info.unit.symbol if info else ""


CSV_HEADER = (
    "datastream_id,pole,lon,lat,district,quantity,unit,"
    "phenomenon_time_start,phenomenon_time_end,result,flags\n"
)


def csv_field(value: object) -> str:
    """One CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break."""
    text = "" if value is None else str(value)
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


class OpenData:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.settings = state.settings
        self.store = state.store
        self.catalogs = Catalogs(state.registry, state.store, state.settings)
        self.tokens = Tokens(state.registry)

    def catalog(self, access: Access) -> Catalog:
        return self.catalogs.get(access)

    # ---- time ranges -----------------------------------------------------------------------

    def time_range(self, start: str | None, end: str | None, default_s: int) -> tuple[int, int]:
        now = int(time.time())
        e = int(parse_time(end)) if end else now
        s = int(parse_time(start)) if start else e - default_s
        if s >= e:
            raise BadQuery("start must be before end")
        cap = self.settings.opendata_max_range_days * 86400
        if e - s > cap:
            raise BadQuery(f"time range longer than {self.settings.opendata_max_range_days} days")
        return s, e

    def pick(self, cat: Catalog, datastream: int | None, pole: str | None) -> list[DsInfo]:
        if (datastream is None) == (pole is None):
            raise BadQuery("give exactly one of datastream and pole")
        if datastream is not None:
            ds = cat.datastreams.get(datastream)
            if ds is None:
                raise LookupError(f"no published Datastream {datastream}")
            return [ds]
        assert pole is not None
        if pole not in cat.poles:
            raise LookupError(f"no pole {pole!r}")
        return [cat.datastreams[i] for i in cat.by_pole.get(pole, [])]

    # ---- latest ----------------------------------------------------------------------------

    def latest(self, cat: Catalog) -> list[dict[str, Any]]:
        now = int(time.time())
        plain = {d.key: d for d in cat.datastreams.values() if not d.counted}
        got: dict[int, Point] = {}
        if plain:
            for key, p in self.store.latest(plain).items():
                got[plain[key].id] = p
        w = self.settings.opendata_motion_interval_s
        for d in cat.datastreams.values():
            if d.counted:
                page = self.store.observations(
                    ObservationQuery(
                        (d.id,), (d.id,), w, now, order=("ts DESC",), limit=1, budget_ms=1000
                    )
                )
                if page.rows:
                    _s, ts, v, dur, _f = page.rows[0]
                    got[d.id] = Point(ts, v, dur)
        out = []
        for d in sorted(cat.datastreams.values(), key=lambda d: d.id):
            point = got.get(d.id)
            if point is None:
                continue
            pole = cat.poles[d.pole]
            out.append(
                {
                    "datastream": d.id,
                    "pole": d.pole,
                    "quantity": d.q,
                    "unit": d.unit,
                    "unitSymbol": symbol(d.q),
                    "time": iso(point.ts),
                    "interval_s": point.dur,
                    "result": int(point.v) if d.counted else point.v,
                    "flags": list(point.flags),
                    "lon": pole["lon"],
                    "lat": pole["lat"],
                }
            )
        return out

    # ---- aggregates ------------------------------------------------------------------------

    def aggregates(
        self,
        cat: Catalog,
        dss: list[DsInfo],
        start: int,
        end: int,
        window: Window,
        *,
        skip_coarse: bool = False,
    ) -> list[dict[str, Any]]:
        """Aggregates of ``dss``. A count published only in coarser windows than ``window`` is
        refused when asked for by name, and left out (``skip_coarse``) when a whole pole is."""
        w = self.settings.opendata_motion_interval_s
        out = []
        for d in dss:
            if d.counted and {"minute": 60, "hour": 3600, "day": 86400}[window] < w:
                if skip_coarse:
                    continue
                raise BadQuery(
                    f"{d.q} is published only as counts per {w} s: use window=hour or day"
                )
            rows = self.store.aggregate(d.key, start, end, window)
            value: list[dict[str, Any]]
            if d.counted:
                value = [{"time": iso(a.bucket), "sum": round(a.mean * a.count)} for a in rows]
            else:
                value = [
                    {
                        "time": iso(a.bucket),
                        "count": a.count,
                        "mean": api_round(d.q, a.mean),
                        "min": a.min,
                        "max": a.max,
                    }
                    for a in rows
                ]
            out.append(
                {
                    "datastream": d.id,
                    "pole": d.pole,
                    "quantity": d.q,
                    "unit": d.unit,
                    "unitSymbol": symbol(d.q),
                    "window": window,
                    "value": value,
                }
            )
        return out

    # ---- CSV -------------------------------------------------------------------------------

    def csv_rows(self, cat: Catalog, dss: list[DsInfo], start: int, end: int) -> Iterator[str]:
        """CSV text in chunks, stream by stream, by keyset pages (no growing OFFSET)."""
        yield CSV_HEADER
        left = self.settings.opendata_max_csv_rows
        now = int(time.time())
        counted = {d.id for d in dss if d.counted}
        for d in dss:
            pole = cat.poles[d.pole]
            where = ",".join(csv_field(pole[k]) for k in ("lon", "lat", "district"))
            head = f"{d.id},{csv_field(d.pole)},{where},{d.q},{d.unit}"
            after = start - 1
            while left > 0:
                page = self.store.observations(
                    ObservationQuery(
                        (d.id,),
                        tuple(counted & {d.id}),
                        self.settings.opendata_motion_interval_s,
                        now,
                        where="ts > ? AND ts < ?",
                        params=(after, end),
                        order=("ts ASC",),
                        limit=min(20_000, left),
                        budget_ms=self.settings.opendata_query_budget_ms,
                    )
                )
                if not page.rows:
                    break
                lines = []
                for _s, ts, v, dur, flags in page.rows:
                    result = str(int(v)) if d.counted else repr(v)
                    t0 = iso(ts - dur) if dur else iso(ts)
                    lines.append(
                        f"{head},{t0},{iso(ts)},{result},{(flags or '').replace(',', ';')}\n"
                    )
                left -= len(page.rows)
                after = page.rows[-1][1]
                yield "".join(lines)
                if len(page.rows) < 20_000:
                    break

    # ---- GeoJSON ---------------------------------------------------------------------------

    def geojson(self, cat: Catalog) -> dict[str, Any]:
        latest: dict[str, list[dict[str, Any]]] = {}
        for item in self.latest(cat):
            latest.setdefault(item["pole"], []).append(
                {
                    k: item[k]
                    for k in ("datastream", "quantity", "unit", "unitSymbol", "time", "result")
                }
            )
        features = []
        for pid, p in sorted(cat.poles.items()):
            features.append(
                {
                    "type": "Feature",
                    "id": pid,
                    "geometry": {"type": "Point", "coordinates": [p["lon"], p["lat"]]},
                    "properties": {
                        "pole": pid,
                        "name": p["name"],
                        "district": p["district"],
                        "owner": p["owner"],
                        "latest": latest.get(pid, []),
                    },
                }
            )
        return {
            "type": "FeatureCollection",
            "license": self.settings.opendata_licence_url,
            "attribution": self.settings.opendata_attribution,
            "features": features,
        }

    # ---- sensor register -------------------------------------------------------------------

    def register(self, cat: Catalog, base: str) -> list[dict[str, Any]]:
        """Every module as a register entry (after Kadaster's SensRNet). Modules that publish
        nothing still appear, so the public knows what stands where and why, but with no
        quantities, data links or values."""
        with self.state.registry.session() as db:
            owners = {o.id: o for o in db.scalars(select(Owner))}
            poles = {p.id: p for p in db.scalars(select(Pole))}
            modules = list(db.scalars(select(Module).order_by(Module.id)))
            db.expunge_all()
        streams_of: dict[int, list[DsInfo]] = {}
        for d in cat.datastreams.values():
            streams_of.setdefault(d.module_id, []).append(d)
        out = []
        for m in modules:
            pos = cat.poles.get(m.pole_id)
            if pos is None or m.pole_id not in poles:
                continue
            owner = owners.get(m.owner_id)
            dss = streams_of.get(m.id, [])
            published = bool(dss)
            out.append(
                {
                    "id": f"module-{m.id}",
                    "pole": m.pole_id,
                    "category": m.type,
                    "sensorType": (m.attributes or {}).get("sensor"),
                    "location": {"type": "Point", "coordinates": [pos["lon"], pos["lat"]]},
                    "owner": owner.name if owner else None,
                    "ownerKind": owner.kind if owner else None,
                    "observationGoal": m.purpose,
                    "isPublic": m.openness != "closed",
                    "isOpenData": m.openness == "open" and not m.personal_data,
                    "isReusable": m.openness == "open" and not m.personal_data,
                    "containsPersonalInfoData": m.personal_data,
                    "license": self.settings.opendata_licence if published else None,
                    "quantities": sorted({d.q for d in dss}),
                    "datastreams": [
                        {
                            "id": d.id,
                            "quantity": d.q,
                            "unit": d.unit,
                            "unitSymbol": symbol(d.q),
                            "dataLink": f"{base}/sta/v1.1/Datastreams({d.id})/Observations",
                        }
                        for d in sorted(dss, key=lambda d: d.id)
                    ],
                    "dataLink": (
                        f"{base}/sta/v1.1/Things('{m.pole_id}')/Datastreams" if published else None
                    ),
                }
            )
        return out


def register_summary(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The register per module type, for a privacy statement (the portal's, the landing
    page's): how many modules of each type stand in the street, which hold personal data, which
    publish, and why they are there. Made from the register's entries, so a statement made
    from it cannot say what the register contradicts."""
    by_type: dict[str, dict[str, Any]] = {}
    for e in entries:
        t = by_type.setdefault(
            e["category"],
            {
                "category": e["category"],
                "modules": 0,
                "poles": set(),
                "sensorTypes": set(),
                "owners": set(),
                "observationGoals": set(),
                "containsPersonalInfoData": 0,
                "isPublic": 0,
                "isOpenData": 0,
                "published": 0,
                "quantities": set(),
            },
        )
        t["modules"] += 1
        t["poles"].add(e["pole"])
        for key, field in (
            ("sensorTypes", "sensorType"),
            ("owners", "owner"),
            ("observationGoals", "observationGoal"),
        ):
            if e[field]:
                t[key].add(e[field])
        for flag in ("containsPersonalInfoData", "isPublic", "isOpenData"):
            t[flag] += bool(e[flag])
        t["published"] += bool(e["datastreams"])
        t["quantities"].update(e["quantities"])
    types = []
    for t in sorted(by_type.values(), key=lambda t: t["category"]):
        t["poles"] = len(t["poles"])
        for key in ("sensorTypes", "owners", "observationGoals", "quantities"):
            t[key] = sorted(t[key])
        types.append(t)
    personal = [t["category"] for t in types if t["containsPersonalInfoData"]]
    return {
        "modules": len(entries),
        "containsPersonalInfoData": sum(t["containsPersonalInfoData"] for t in types),
        "categoriesWithPersonalInfoData": personal,
        "value": types,
    }
