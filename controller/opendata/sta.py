"""The SensorThings read engine: resource paths, collections, entities, ``$expand``, paging.

Catalog entities are read with SQL in the catalog; Observations with one
``TimeSeriesStore.observations`` call per collection, limited to the published streams. The
server applies $filter, $count, $orderby, $skip and $top in the database, then pages (a
``@iot.nextLink`` when more rows exist, with a stable order: every order ends with the key),
then $select and $expand.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from controller.opendata import render
from controller.opendata.catalog import Catalog
from controller.opendata.entities import BY_PLURAL, OBS_ID_BASE, RENDERED, TYPES, EntityType
from controller.opendata.query import MAX_INT, BadQuery, Bin, Expr, Lit, Options, Unsupported
from controller.opendata.sql import TS, Compiler, bind, bind_order
from controller.settings import Settings
from controller.store.base import ObservationQuery, QueryTooExpensive, TimeSeriesStore

CONFORMANCE = [
    "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/resource-path/resource-path-to-entities",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/data-array/data-array",
]
ALIAS = "a0"


class NotFound(LookupError):
    """HTTP 404."""


@dataclass
class Ctx:
    cat: Catalog
    store: TimeSeriesStore
    settings: Settings
    base: str  # .../sta/v1.1
    now: float = field(default_factory=time.time)
    next_link: Callable[[int, int], str] | None = None
    # $top caps each collection, but $expand multiplies them: the whole response has a cap of
    # entities and one time budget, whatever its nesting
    entities: int = 0
    started: float = field(default_factory=time.monotonic)

    def spend(self, n: int) -> None:
        """Count ``n`` more entities into the response; past its caps the request stops."""
        self.entities += n
        cap = self.settings.opendata_max_entities
        if self.entities > cap:
            raise BadQuery(
                f"the response would hold more than {cap} entities, nested ones included: "
                "lower $top (also inside $expand) or expand less"
            )
        self.budget_ms()

    def rows(self, sql: str, params: list[Any]) -> list[Any]:
        """Catalog rows, within the request's time budget."""
        deadline = self.started + self.settings.opendata_query_budget_ms / 1000
        return self.cat.rows(sql, params, deadline)

    def budget_ms(self) -> int:
        """What is left of the request's time budget; QueryTooExpensive when nothing is."""
        budget = self.settings.opendata_query_budget_ms
        left = budget - (time.monotonic() - self.started) * 1000
        if left <= 0:
            raise QueryTooExpensive(f"the request ran past {budget} ms")
        return max(1, int(left))

    def top(self, o: Options) -> int:
        top = self.settings.opendata_default_top if o.top is None else o.top
        return min(top, self.settings.opendata_max_top)

    def foreign(self, _nav: str, sql: str, params: list[Any]) -> list[int]:
        return [int(r[0]) for r in self.rows(sql, params)]


# ---- paths ---------------------------------------------------------------------------------

_NUMBER_KEY = re.compile(r"[0-9]{1,19}")
_SEGMENT = re.compile(r"^([A-Za-z@$][\w@.$]*)(?:\((.*)\))?$")


def _key(t: EntityType, text: str) -> Any:
    if len(text) >= 2 and text[0] == "'" and text[-1] == "'":
        return text[1:-1].replace("''", "'")
    if _NUMBER_KEY.fullmatch(text) and int(text) <= MAX_INT:
        return int(text)
    raise BadQuery(f"bad entity key {text[:40]!r} (a number up to {MAX_INT} or a quoted string)")


def _split_path(path: str) -> list[tuple[str, str | None]]:
    segs: list[tuple[str, str | None]] = []
    buf, quoted = "", False
    for ch in path.strip("/") + "/":
        if ch == "'":
            quoted = not quoted
        if ch == "/" and not quoted:
            m = _SEGMENT.match(buf)
            if m is None:
                raise NotFound(f"no resource {buf!r}")
            segs.append((m.group(1), m.group(2)))
            buf = ""
        else:
            buf += ch
    return segs


@dataclass
class Collection:
    t: EntityType
    cond: str = "1"  # catalog: SQL over alias a0
    params: list[Any] = field(default_factory=list)
    streams: list[int] | None = None  # Observations: which streams


@dataclass
class One:
    t: EntityType
    ident: Any
    row: Any  # sqlite3.Row (catalog) or an observation row


def _fetch_one(ctx: Ctx, coll: Collection, ident: Any) -> One:
    t = coll.t
    if t.name == "Observation":
        if not isinstance(ident, int):
            raise NotFound(f"no Observation {ident!r}")
        stream, ts = divmod(ident, OBS_ID_BASE)
        streams = coll.streams if coll.streams is not None else list(ctx.cat.datastreams)
        if stream not in ctx.cat.datastreams or stream not in streams:
            raise NotFound(f"no Observation {ident}")
        at = Bin("eq", TS, Lit(ts, "num"))
        page = ctx.store.observations(_obs_query(ctx, [stream], at, limit=1))
        if not page.rows:
            raise NotFound(f"no Observation {ident}")
        return One(t, ident, page.rows[0])
    if isinstance(ident, str) != t.string_id:
        raise NotFound(f"no {t.name} {ident!r}")
    rows = ctx.rows(
        f"SELECT {ALIAS}.* FROM {t.table} {ALIAS} WHERE ({coll.cond}) AND {ALIAS}.id = ?",
        [*coll.params, ident],
    )
    if not rows:
        raise NotFound(f"no {t.name} {render.key_repr(t, ident)}")
    return One(t, ident, rows[0])


def navigate(ctx: Ctx, src: One, nav: str) -> Collection:
    """The target collection of ``nav`` from one entity (a to-one nav: a collection of <= 1)."""
    t = src.t
    if nav not in t.navs:
        raise NotFound(f"{t.name} has no navigation property {nav!r}")
    target = TYPES[t.navs[nav].target]
    if target.name == "Observation":
        if t.name == "Datastream":
            return Collection(target, streams=[int(src.ident)])
        ids = [
            int(r[0]) for r in ctx.rows("SELECT id FROM datastreams WHERE foi_id = ?", [src.ident])
        ]
        return Collection(target, streams=ids)
    if t.name == "Observation":
        stream = int(src.row[0])
        if target.name == "Datastream":
            return Collection(target, f"{ALIAS}.id = ?", [stream])
        return Collection(
            target, f"{ALIAS}.id = (SELECT foi_id FROM datastreams WHERE id = ?)", [stream]
        )
    link = t.navs[nav].link.format(s="src", t=ALIAS)
    return Collection(
        target,
        f"EXISTS (SELECT 1 FROM {t.table} src WHERE src.id = ? AND {link})",
        [src.ident],
    )


def resolve(ctx: Ctx, path: str, opts: Options) -> tuple[int, Any]:
    """(status, body) for a resource path below /sta/v1.1. Body is JSON or a str ($value)."""
    segs = _split_path(path)
    name, key = segs[0]
    if name not in BY_PLURAL:
        raise NotFound(f"no entity set {name!r}")
    cur: Collection | One = Collection(BY_PLURAL[name])
    if key is not None:
        assert isinstance(cur, Collection)
        cur = _fetch_one(ctx, cur, _key(cur.t, key))
    rest = segs[1:]
    while rest:
        name, key = rest[0]
        rest = rest[1:]
        if name == "$ref":
            if rest:
                raise NotFound("nothing follows $ref")
            return 200, _refs(ctx, cur, opts)
        if isinstance(cur, Collection):
            raise BadQuery(f"{cur.t.plural} needs a key before /{name}")
        if name in cur.t.navs:
            many = cur.t.navs[name].many
            coll = navigate(ctx, cur, name)
            if key is not None:
                if not many:
                    raise BadQuery(f"{name} is a single entity; it takes no key")
                cur = _fetch_one(ctx, coll, _key(coll.t, key))
            elif many:
                cur = coll
            else:
                cur = _first(ctx, coll)
            continue
        if key is not None:
            raise NotFound(f"no navigation property {name!r}")
        return 200, _property(ctx, cur, name, rest)
    if isinstance(cur, Collection):
        return 200, collection(ctx, cur, opts)
    return 200, one(ctx, cur, opts)


def _first(ctx: Ctx, coll: Collection) -> One:
    if coll.t.name == "Observation":
        raise NotFound("no such Observation")
    rows = ctx.rows(
        f"SELECT {ALIAS}.* FROM {coll.t.table} {ALIAS} WHERE {coll.cond} LIMIT 1", coll.params
    )
    if not rows:
        raise NotFound(f"no {coll.t.name} there")
    return One(coll.t, rows[0]["id"], rows[0])


def _props(ctx: Ctx, cur: One) -> dict[str, Any]:
    if cur.t.name == "Observation":
        return render.obs_props(cur.row, _counted(ctx, cur.row[0]))
    return render.catalog_props(cur.t, cur.row)


def _counted(ctx: Ctx, stream: int) -> bool:
    ds = ctx.cat.datastreams.get(stream)
    return bool(ds and ds.counted)


def _property(ctx: Ctx, cur: One, name: str, rest: list[tuple[str, str | None]]) -> Any:
    props = _props(ctx, cur)
    if name in ("id", "@iot.id"):
        props[name] = cur.ident
    if name not in props:
        raise NotFound(f"{cur.t.name} has no property {name!r}")
    value = props[name]
    if not rest:
        return {name: value}
    if rest == [("$value", None)]:
        if value is None:
            raise NotFound(f"{name} has no value")
        return value if isinstance(value, str) else render_value(value)
    raise NotFound("only $value may follow a property")


def render_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _refs(ctx: Ctx, cur: Collection | One, opts: Options) -> dict[str, Any]:
    if isinstance(cur, One):
        return {"@iot.selfLink": render.self_link(ctx.base, cur.t, cur.ident)}
    opts.select = ["@iot.selfLink"]
    opts.expand = []
    return collection(ctx, cur, opts)


# ---- reading ---------------------------------------------------------------------------------


def one(ctx: Ctx, cur: One, opts: Options) -> dict[str, Any]:
    render.check_select(cur.t, opts.select)
    out = render.entity(cur.t, cur.ident, _props(ctx, cur), ctx.base, opts.select)
    _expand(ctx, cur, out, opts)
    return out


def _obs_query(
    ctx: Ctx,
    streams: list[int],
    where: Expr | None,
    order: tuple[tuple[Expr, bool], ...] = (),
    limit: int = 100,
    offset: int = 0,
    count: bool = False,
) -> ObservationQuery:
    counted = ctx.cat.counted()
    s = ctx.settings
    return ObservationQuery(
        streams=tuple(streams),
        counted=tuple(i for i in streams if i in counted),
        count_window=s.opendata_motion_interval_s,
        until=int(ctx.now),
        filter=where,
        orderby=order,
        limit=limit,
        offset=offset,
        count=count,
        budget_ms=ctx.budget_ms(),
    )


def collection(ctx: Ctx, coll: Collection, opts: Options, nested: bool = False) -> dict[str, Any]:
    """``{"@iot.count"?, "value": [...], "@iot.nextLink"?}`` (keys prefixed by the caller when
    nested)."""
    t = coll.t
    render.check_select(t, opts.select)
    top = ctx.top(opts)
    if t.name == "Observation":
        where = bind(opts.filter, ctx.now, ctx.foreign) if opts.filter is not None else None
        order = bind_order(opts.orderby, ctx.now)
        published = set(ctx.cat.datastreams)
        streams = [s for s in (coll.streams or []) if s in published]
        if coll.streams is None:
            streams = sorted(published)
        q = _obs_query(ctx, streams, where, order, top + 1, opts.skip, opts.count)
        page = ctx.store.observations(q)
        rows: list[Any] = page.rows
        total = page.total
        ctx.spend(len(rows[:top]))
        if opts.result_format == "dataArray":
            return _data_array(ctx, rows[:top], opts, total, len(rows) > top, top)
        value = []
        for r in rows[:top]:
            item = render.observation(r, _counted(ctx, r[0]), ctx.base, opts.select)
            _expand(ctx, One(t, render.obs_id(r), r), item, opts)
            value.append(item)
    else:
        if opts.result_format:
            raise BadQuery("$resultFormat=dataArray applies to Observations only")
        comp = Compiler(t, ALIAS, ctx.now)
        cond = f"({coll.cond})"
        if opts.filter is not None:
            cond += " AND " + comp.where(opts.filter)
        where_params = [*coll.params, *comp.params]
        ocomp = Compiler(t, ALIAS, ctx.now, _n=500)
        by = [*ocomp.order(opts.orderby), f"{ALIAS}.id ASC"]
        sql = f"FROM {t.table} {ALIAS} WHERE {cond}"
        try:
            rows = ctx.rows(
                f"SELECT {ALIAS}.* {sql} ORDER BY {', '.join(by)} LIMIT ? OFFSET ?",
                [*where_params, *ocomp.params, top + 1, opts.skip],
            )
            total = ctx.rows(f"SELECT count(*) {sql}", where_params)[0][0] if opts.count else None
        except sqlite3.Error as e:
            raise BadQuery(f"query could not run: {e}") from e
        ctx.spend(len(rows[:top]))
        value = []
        for r in rows[:top]:
            cur = One(t, r["id"], r)
            item = render.entity(t, r["id"], render.catalog_props(t, r), ctx.base, opts.select)
            _expand(ctx, cur, item, opts)
            value.append(item)
    out: dict[str, Any] = {}
    if total is not None:
        out["@iot.count"] = total
    out["value"] = value
    if len(rows) > top and ctx.next_link is not None and not nested:
        out["@iot.nextLink"] = ctx.next_link(opts.skip + top, top)
    elif len(rows) > top and nested:
        out["@iot.nextLink"] = ""
    return out


def _data_array(
    ctx: Ctx, rows: list[Any], opts: Options, total: int | None, more: bool, top: int
) -> dict[str, Any]:
    comps = opts.select or ["id", "phenomenonTime", "resultTime", "result"]
    for c in comps:
        if c not in ("id", "@iot.id") and c not in RENDERED["Observation"]:
            raise BadQuery(f"$select: Observation has no property {c!r}")
    groups: dict[int, list[list[Any]]] = {}
    for r in rows:
        props = render.obs_props(r, _counted(ctx, r[0]))
        props["id"] = props["@iot.id"] = render.obs_id(r)
        groups.setdefault(r[0], []).append([props[c] for c in comps])
    ds = TYPES["Datastream"]
    value = [
        {
            "Datastream@iot.navigationLink": render.self_link(ctx.base, ds, sid),
            "components": comps,
            "dataArray@iot.count": len(arr),
            "dataArray": arr,
        }
        for sid, arr in groups.items()
    ]
    out: dict[str, Any] = {}
    if total is not None:
        out["@iot.count"] = total
    out["value"] = value
    if more and ctx.next_link is not None:
        out["@iot.nextLink"] = ctx.next_link(opts.skip + top, top)
    return out


def _expand(ctx: Ctx, cur: One, out: dict[str, Any], opts: Options) -> None:
    for e in opts.expand:
        if e.nav not in cur.t.navs:
            raise BadQuery(f"$expand: {cur.t.name} has no navigation property {e.nav!r}")
        coll = navigate(ctx, cur, e.nav)
        if cur.t.navs[e.nav].many:
            got = collection(ctx, coll, e.options, nested=True)
            out[e.nav] = got["value"]
            if "@iot.count" in got:
                out[f"{e.nav}@iot.count"] = got["@iot.count"]
            if "@iot.nextLink" in got:
                link = render.self_link(ctx.base, cur.t, cur.ident) + f"/{e.nav}"
                top = ctx.top(e.options)
                out[f"{e.nav}@iot.nextLink"] = f"{link}?$top={top}&$skip={e.options.skip + top}"
        else:
            try:
                target = _first(ctx, coll)
            except NotFound:
                continue
            ctx.spend(1)
            out[e.nav] = one(ctx, target, e.options)


def landing(base: str) -> dict[str, Any]:
    return {
        "value": [{"name": t.plural, "url": f"{base}/{t.plural}"} for t in TYPES.values()],
        "serverSettings": {"conformance": CONFORMANCE},
    }


__all__ = ["Ctx", "NotFound", "Unsupported", "landing", "resolve"]
