"""``$filter`` and ``$orderby`` trees to SQL, so queries run in the database.

One compiler serves the catalog (Things, Datastreams, ...; always SQLite; navigation becomes
``EXISTS`` over joined tables) and the time-series stores (Observations: columns ``stream``,
``ts``, ``v``, ``dur``, ``flags``), each in its own dialect (``dialects``). An Observation
query stays a neutral tree until its store renders it (``observation_sql``): ``bind`` first
evaluates a condition on the Observation's Datastream or FeatureOfInterest in the catalog, the
other database, into the streams that meet it (``StreamIn``), which also keeps it inside what
may be published, and fixes ``now()``. Every value goes in as a parameter; identifiers come only
from the entity tables.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from controller.opendata.dialects import SQLITE, SqliteDialect, Typed
from controller.opendata.entities import TYPES, EntityType
from controller.opendata.query import (
    ARITHMETIC,
    COMPARISONS,
    BadQuery,
    Bin,
    Call,
    Expr,
    Geometry,
    Lit,
    Neg,
    Not,
    Path,
    StreamIn,
    Unsupported,
    distance,
    parse_time,
    parse_wkt,
    point_in,
)

GEO_BOOL: tuple[str, ...] = ("geo.intersects", "st_within", "st_intersects", "st_contains")
GEO_BOOL += ("st_equals", "st_disjoint")

Foreign = Callable[[str, str, list[Any]], list[int]]


@functools.lru_cache(maxsize=256)
def _geometry(wkt: str) -> Geometry:
    return parse_wkt(wkt)


def sp_within(lon: float | None, lat: float | None, wkt: str) -> int:
    """SQL function for the catalog: is the point inside the geometry (boundary counts)."""
    if lon is None or lat is None:
        return 0
    g = _geometry(wkt)
    return int(point_in(g, lon, lat) or distance(g, lon, lat) < 1e-12)


def sp_distance(lon: float | None, lat: float | None, wkt: str) -> float | None:
    if lon is None or lat is None:
        return None
    return distance(_geometry(wkt), lon, lat)


def _wkt(g: Geometry) -> str:
    if g.kind in ("point", "linestring"):
        return f"{g.kind.upper()}(" + ",".join(f"{x!r} {y!r}" for x, y in g.points) + ")"
    polys = ",".join(
        "(" + ",".join("(" + ",".join(f"{x!r} {y!r}" for x, y in r) + ")" for r in rings) + ")"
        for rings in g.polygons
    )
    return f"MULTIPOLYGON({polys})"


def _paths(e: Expr) -> list[Path]:
    if isinstance(e, Path):
        return [e]
    if isinstance(e, Bin):
        return _paths(e.left) + _paths(e.right)
    if isinstance(e, Call):
        return [p for a in e.args for p in _paths(a)]
    if isinstance(e, Not | Neg):
        return _paths(e.expr)
    return []


def _strip(e: Expr) -> Expr:
    """The same expression with every path's first segment removed."""
    if isinstance(e, Path):
        return Path(e.segments[1:])
    if isinstance(e, Bin):
        return Bin(e.op, _strip(e.left), _strip(e.right))
    if isinstance(e, Call):
        return Call(e.name, tuple(_strip(a) for a in e.args))
    if isinstance(e, Not):
        return Not(_strip(e.expr))
    if isinstance(e, Neg):
        return Neg(_strip(e.expr))
    return e


def bind(e: Expr, now: float, foreign: Foreign) -> Expr:
    """An Observation ``$filter`` ready for any store: each condition on the Datastream or
    FeatureOfInterest evaluated in the catalog by ``foreign`` (SQL, params -> stream ids) into a
    ``StreamIn``, and ``now()`` fixed to ``now``."""
    if isinstance(e, Bin) and e.op in ("and", "or"):
        return Bin(e.op, bind(e.left, now, foreign), bind(e.right, now, foreign))
    if isinstance(e, Not):
        return Not(bind(e.expr, now, foreign))
    ids = _foreign(e, now, foreign)
    return _fix_now(e, now) if ids is None else StreamIn(tuple(ids))


def bind_order(items: list[tuple[Expr, bool]], now: float) -> tuple[tuple[Expr, bool], ...]:
    return tuple((_fix_now(e, now), desc) for e, desc in items)


def _fix_now(e: Expr, now: float) -> Expr:
    if isinstance(e, Call):
        if e.name == "now":
            return Lit(now, "time")
        return Call(e.name, tuple(_fix_now(a, now) for a in e.args))
    if isinstance(e, Bin):
        return Bin(e.op, _fix_now(e.left, now), _fix_now(e.right, now))
    if isinstance(e, Not):
        return Not(_fix_now(e.expr, now))
    if isinstance(e, Neg):
        return Neg(_fix_now(e.expr, now))
    return e


def _foreign(e: Expr, now: float, foreign: Foreign) -> list[int] | None:
    """The streams whose Datastream (or FeatureOfInterest) meets ``e``; None when ``e`` is on
    the Observation's own properties."""
    obs = TYPES["Observation"]
    paths = _paths(e)
    heads = {p.segments[0] for p in paths}
    navs = heads & set(obs.navs)
    if not navs:
        return None
    if len(heads) > 1:
        raise Unsupported(
            "a condition may not mix an Observation's own properties with its "
            "Datastream's or FeatureOfInterest's, nor both of those"
        )
    nav = navs.pop()
    if any(len(p.segments) < 2 for p in paths):
        raise BadQuery(f"{nav} is an entity; compare one of its properties")
    target = TYPES[obs.navs[nav].target]
    sub = Compiler(target, "f0", now)
    cond = sub.where(_strip(e))
    if target.name == "Datastream":
        sql = f"SELECT f0.id FROM datastreams f0 WHERE {cond}"
    else:
        sql = (
            "SELECT d.id FROM datastreams d WHERE d.foi_id IN "
            f"(SELECT f0.id FROM features f0 WHERE {cond})"
        )
    return foreign(nav, sql, sub.params)


@dataclass
class Compiler:
    """Compiles expressions rooted at ``root`` (table alias ``alias``) into SQL + params, in
    ``dialect``'s SQL. Observation trees come through ``bind`` (no navigation left)."""

    root: EntityType
    alias: str = "a0"
    now: float = field(default_factory=time.time)
    dialect: SqliteDialect = SQLITE
    params: list[Any] = field(default_factory=list)
    _n: int = 0
    _joins: list[tuple[str, str, str]] = field(default_factory=list)  # table, alias, link

    def _alias(self) -> str:
        self._n += 1
        return f"{self.alias}_{self._n}"

    # ---- predicates -------------------------------------------------------------------

    def where(self, e: Expr) -> str:
        return self._pred(e)[0]

    def _pred(self, e: Expr) -> Typed:
        if isinstance(e, Bin) and e.op in ("and", "or"):
            left, _ = self._pred(e.left)
            right, _ = self._pred(e.right)
            return f"({left} {e.op.upper()} {right})", "bool"
        if isinstance(e, Not):
            inner, _ = self._pred(e.expr)
            return f"(NOT {inner})", "bool"
        if isinstance(e, StreamIn):
            if not e.ids:
                return self.dialect.false, "bool"
            return f"stream IN ({','.join(str(int(i)) for i in e.ids)})", "bool"
        if self.root.name == "Observation" and {p.segments[0] for p in _paths(e)} & set(
            self.root.navs
        ):
            raise Unsupported("navigation in $filter is not available here")
        mark = len(self._joins)
        sql, _kind = self._value(e)
        joins = self._joins[mark:]
        del self._joins[mark:]
        if joins:
            tables = ", ".join(f"{t} {a}" for t, a, _ in joins)
            links = " AND ".join(link for _, _, link in joins)
            sql = f"EXISTS (SELECT 1 FROM {tables} WHERE {links} AND {sql})"
        return sql, "bool"

    # ---- values -----------------------------------------------------------------------

    def _param(self, v: Any) -> str:
        return self.dialect.param(self.params, v)

    def _value(self, e: Expr) -> Typed:
        if isinstance(e, Lit):
            return self._lit(e)
        if isinstance(e, Path):
            return self._path(e, self.root, self.alias, in_filter=True)
        if isinstance(e, Neg):
            s, k = self._value(e.expr)
            return f"(-{s})", k
        if isinstance(e, Not):
            return self._pred(e)
        if isinstance(e, Call):
            return self._call(e)
        if isinstance(e, Bin):
            if e.op in ("and", "or"):
                return self._pred(e)
            if e.op in COMPARISONS:
                return self._compare(e)
            if e.op in ARITHMETIC:
                (ls, lk), (rs, rk) = self._value(e.left), self._value(e.right)
                for k in (lk, rk):
                    if k in ("geo", "str", "bool"):
                        raise BadQuery(f"{e.op} needs numbers or times, not {k}")
                if e.op == "div":
                    return self.dialect.arith("div", ls, rs), "num"
                kind = "time" if "time" in (lk, rk) and e.op in ("add", "sub") else "num"
                return self.dialect.arith(e.op, ls, rs), kind
        raise BadQuery(f"cannot use {e!r} here")

    def _lit(self, e: Lit) -> Typed:
        if e.kind == "null":
            return "NULL", "null"
        if e.kind == "bool":
            return (self.dialect.true if e.value else self.dialect.false), "bool"
        if e.kind == "geo":
            return self._param(_wkt(e.value)), "geo"
        return self._param(e.value), e.kind

    def _compare(self, e: Bin) -> Typed:
        left, right = e.left, e.right
        # a time property against a string: read the string as a time
        lk = self._kind_hint(left)
        rk = self._kind_hint(right)
        if lk == "time" and isinstance(right, Lit) and right.kind == "str":
            right = Lit(parse_time(right.value), "time")
        if rk == "time" and isinstance(left, Lit) and left.kind == "str":
            left = Lit(parse_time(left.value), "time")
        (ls, lk2), (rs, rk2) = self._value(left), self._value(right)
        if "geo" in (lk2, rk2):
            raise BadQuery("geometries cannot be compared with eq/lt/...; use st_* functions")
        if "null" in (lk2, rk2) and e.op in ("eq", "ne"):
            other = rs if lk2 == "null" else ls
            return f"({other} IS {'NOT ' if e.op == 'ne' else ''}NULL)", "bool"
        return self.dialect.compare(e.op, (ls, lk2), (rs, rk2)), "bool"

    def _kind_hint(self, e: Expr) -> str:
        if isinstance(e, Path):
            t = self.root
            segs = list(e.segments)
            while len(segs) > 1 and segs[0] in t.navs:
                t = TYPES[t.navs[segs[0]].target]
                segs = segs[1:]
            return "time" if segs and segs[0] in t.times else "any"
        if isinstance(e, Call) and e.name in ("now", "mindatetime", "maxdatetime", "date"):
            return "time"
        if isinstance(e, Lit) and e.kind == "time":  # now(), fixed by bind
            return "time"
        return "any"

    def _path(self, p: Path, t: EntityType, alias: str, in_filter: bool) -> Typed:
        segs = p.segments
        head = segs[0]
        if head in t.navs:
            nav = t.navs[head]
            target = TYPES[nav.target]
            if not nav.link or not target.table:
                raise Unsupported(f"{t.name}/{head} cannot be used in a condition here")
            if len(segs) < 2:
                raise BadQuery(f"{head} is an entity; name one of its properties")
            a = self._alias()
            link = nav.link.format(s=alias, t=a)
            if in_filter:
                self._joins.append((target.table, a, link))
                return self._path(Path(segs[1:]), target, a, in_filter)
            if nav.many:
                raise Unsupported(f"cannot order by a property of the collection {head}")
            inner, kind = self._path(Path(segs[1:]), target, a, in_filter)
            return f"(SELECT {inner} FROM {target.table} {a} WHERE {link})", kind
        joined = "/".join(segs)
        if joined in t.props:
            kind = "time" if joined in t.times else t.kinds.get(joined, "any")
            if joined in ("@iot.id", "id"):
                kind = "str" if t.string_id else "num"
            return t.props[joined].format(a=alias), kind
        if head in t.json_props and len(segs) > 1:
            key = "$" + "".join(f'."{s}"' for s in segs[1:])
            column = t.props[head].format(a=alias)
            return self.dialect.json_path(column, self._param(key)), "any"
        if head in t.geo and len(segs) == 1:
            lon, lat = t.geo[head]
            return f"{lon.format(a=alias)}\x00{lat.format(a=alias)}", "geo"
        raise BadQuery(f"{t.name} has no property {joined!r}")

    def _call(self, e: Call) -> Typed:
        fn = e.name
        if fn == "now":
            return self._param(self.now), "time"
        if fn == "mindatetime":
            return "0", "time"
        if fn == "maxdatetime":
            return "253402300799", "time"
        if fn in GEO_BOOL or fn == "geo.distance":
            return self._geo(e)
        if fn.startswith("st_") or fn == "geo.length":
            raise Unsupported(f"{fn} is not supported (see the open-data docs for what is)")
        compiled: dict[int, tuple[str, int]] = {}

        def arg(i: int) -> str:
            """The i-th argument where the dialect writes it; written again, the same text
            unless it holds parameters (a navigation stays one join)."""
            if i in compiled and compiled[i][1] == 0:
                return compiled[i][0]
            mark = len(self.params)
            sql = self._value(e.args[i])[0]
            compiled.setdefault(i, (sql, len(self.params) - mark))
            return sql

        return self.dialect.call(fn, arg, len(e.args))

    def _geo(self, e: Call) -> Typed:
        if not self.root.table:
            raise Unsupported(f"{e.name} on Observations: use FeatureOfInterest/feature")
        args = [self._value(a) for a in e.args]
        props = [s for s, k in args if k == "geo" and "\x00" in s]
        lits = [s for s, k in args if k == "geo" and "\x00" not in s]
        if len(props) != 1 or len(lits) != 1:
            raise BadQuery(f"{e.name} needs one location property and one geography'...' literal")
        lon, lat = props[0].split("\x00")
        geom = lits[0]
        if e.name == "geo.distance":
            return f"sp_distance({lon}, {lat}, {geom})", "num"
        inside = f"sp_within({lon}, {lat}, {geom})"
        if e.name == "st_disjoint":
            return f"(NOT {inside})", "bool"
        if e.name == "st_contains" and "\x00" in args[0][0]:
            # a point contains only an equal point
            return inside, "bool"
        return inside, "bool"

    # ---- ordering ---------------------------------------------------------------------

    def order(self, items: list[tuple[Expr, bool]]) -> list[str]:
        out = []
        for e, desc in items:
            if isinstance(e, Path):
                sql, kind = self._path(e, self.root, self.alias, in_filter=False)
                if kind == "geo":
                    raise BadQuery("cannot order by a geometry")
            else:
                mark = len(self._joins)
                sql, kind = self._value(e)
                if len(self._joins) != mark:
                    raise Unsupported("$orderby expressions cannot navigate")
            out.append(self.dialect.order(sql, kind, desc))
        return out


ORDER_TAIL = (("stream", "stream ASC"), ("ts", "ts ASC"))


def observation_sql(
    dialect: SqliteDialect, where: Expr | None, orderby: tuple[tuple[Expr, bool], ...]
) -> tuple[str, list[Any], list[str], list[Any]]:
    """An Observation query in ``dialect``: its condition (empty for none) and parameters, its
    ORDER BY items and theirs. Every order ends with the key (stream, ts), so pages are stable."""
    comp = Compiler(TYPES["Observation"], dialect=dialect)
    cond = comp.where(where) if where is not None else ""
    cond_params, comp.params = comp.params, []
    order = comp.order(list(orderby))
    keys = {o.split()[0] for o in order}
    order += [o for k, o in ORDER_TAIL if k not in keys]
    return cond, cond_params, order, comp.params


TS = Path(("phenomenonTime",))


def time_between(after: int, before: int) -> Expr:
    """Observations with after < time < before."""
    return Bin("and", Bin("gt", TS, Lit(after, "num")), Bin("lt", TS, Lit(before, "num")))
