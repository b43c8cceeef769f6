"""SensorThings query options, parsed: ``$filter`` and ``$orderby`` expressions (OData 4 syntax
as STA 1.1 uses it), ``$select``, ``$expand`` (nested, with its own options after ``;``),
``$top``, ``$skip``, ``$count`` and ``$resultFormat``.

Pure: strings in, a small expression tree out, the same for every database; no SQL here (see
``sql`` and ``dialects``). Errors are ``BadQuery`` (the client's fault, HTTP 400) or
``Unsupported`` (ours, HTTP 501).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any


class BadQuery(ValueError):
    """The request is malformed: HTTP 400 with this reason."""


class Unsupported(ValueError):
    """Valid SensorThings, but not served here: HTTP 501 with this reason."""


# ---- expression tree --------------------------------------------------------------------


@dataclass(frozen=True)
class Lit:
    value: Any
    kind: str  # str | num | bool | null | time | geo


@dataclass(frozen=True)
class Path:
    segments: tuple[str, ...]

    def __str__(self) -> str:
        return "/".join(self.segments)


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Bin:
    op: str  # eq ne gt ge lt le and or add sub mul div mod
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Not:
    expr: Expr


@dataclass(frozen=True)
class Neg:
    expr: Expr


@dataclass(frozen=True)
class StreamIn:
    """An Observation's condition on its Datastream or FeatureOfInterest, already evaluated in
    the catalog: the streams that meet it (never made by the parser; see ``sql.bind``)."""

    ids: tuple[int, ...]


Expr = Lit | Path | Call | Bin | Not | Neg | StreamIn

COMPARISONS = ("eq", "ne", "gt", "ge", "lt", "le")
ARITHMETIC = ("add", "sub", "mul", "div", "mod")
# binding power of binary operators
BINDING = {"or": 1, "and": 2, **dict.fromkeys(COMPARISONS, 4), "add": 5, "sub": 5}
BINDING |= {"mul": 6, "div": 6, "mod": 6}

# What one query may ask; past these it is refused with 400 and the reason. The parser and the
# SQL compiler recurse, SQLite nests what they write (its parser gives up past about 100
# levels), and its integers have 64 bits.
MAX_OPTION_CHARS = 4096  # the value of one query option
MAX_DEPTH = 40  # nesting of an expression: parentheses, not, minus, calls, chained operators
MAX_SQL_NESTING = 60  # the same, weighted by what SQLite's parser holds for each (see _cost)
DATE_FUNCTIONS = ("year", "month", "day", "hour", "minute", "second")
MAX_NUMBER_CHARS = 32  # one number literal
MAX_INT = 2**63 - 1
MAX_ITEMS = 32  # items of one $orderby, $select or $expand (at each level)
_COUNT = re.compile(r"[0-9]{1,18}")  # $top, $skip: at most 18 digits fit in 64 bits

FUNCTIONS = {
    # name: (min args, max args)
    "substringof": (2, 2),
    "contains": (2, 2),
    "endswith": (2, 2),
    "startswith": (2, 2),
    "length": (1, 1),
    "indexof": (2, 2),
    "substring": (2, 3),
    "tolower": (1, 1),
    "toupper": (1, 1),
    "trim": (1, 1),
    "concat": (2, 2),
    "year": (1, 1),
    "month": (1, 1),
    "day": (1, 1),
    "hour": (1, 1),
    "minute": (1, 1),
    "second": (1, 1),
    "fractionalseconds": (1, 1),
    "date": (1, 1),
    "time": (1, 1),
    "totaloffsetminutes": (1, 1),
    "now": (0, 0),
    "mindatetime": (0, 0),
    "maxdatetime": (0, 0),
    "round": (1, 1),
    "floor": (1, 1),
    "ceiling": (1, 1),
    "geo.intersects": (2, 2),
    "geo.distance": (2, 2),
    "geo.length": (1, 1),
    "st_within": (2, 2),
    "st_intersects": (2, 2),
    "st_contains": (2, 2),
    "st_equals": (2, 2),
    "st_disjoint": (2, 2),
    "st_touches": (2, 2),
    "st_overlaps": (2, 2),
    "st_crosses": (2, 2),
    "st_relate": (3, 3),
}

# ---- tokens -----------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<geo>(?:geography|geometry)'(?:[^']|'')*')
  | (?P<str>'(?:[^']|'')*')
  | (?P<time>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})
        (?:/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}))?)
  | (?P<date>\d{4}-\d{2}-\d{2}(?![\d.]))
  | (?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_@$][\w.@$]*(?:/[A-Za-z_@$][\w.@$]*)*)
  | (?P<punct>[(),-])
    """,
    re.VERBOSE | re.ASCII,  # digits are 0-9 only: int() reads others that SQL would not
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise BadQuery(f"unexpected character {text[pos]!r} at position {pos}")
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append((kind, m.group()))
        pos = m.end()
    return out


def parse_time(text: str) -> float:
    """An ISO 8601 instant (or a date, as its midnight UTC) as epoch seconds."""
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            return datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise BadQuery(f"not an ISO 8601 time: {text!r}") from e
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.timestamp()


class _Parser:
    def __init__(self, text: str, option: str) -> None:
        self.text = text
        _check_length(option, text)
        if re.search(r"/(any|all)\s*\(", text):
            raise Unsupported("lambda operators (any, all) are not supported")
        self.toks = _tokens(text)
        self.i = 0
        self.depth = 0  # of the recursion through unary(), which every nesting passes

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise BadQuery(f"unexpected end of expression in {self.text!r}")
        self.i += 1
        return tok

    def expect(self, punct: str) -> None:
        tok = self.take()
        if tok != ("punct", punct):
            raise BadQuery(f"expected {punct!r} but found {tok[1]!r} in {self.text!r}")

    def expr(self, min_bp: int = 0) -> Expr:
        left = self.unary()
        # a run of one of and/or is kept as a list and built balanced: a chain of 100
        # alternatives nests 7 deep, not 100
        run: list[Expr] = []
        run_op = ""
        while True:
            tok = self.peek()
            if tok is None or tok[0] != "name" or tok[1] not in BINDING:
                break
            op = tok[1]
            bp = BINDING[op]
            if bp <= min_bp:
                break
            self.take()
            right = self.expr(bp)
            if op in ("and", "or"):
                if op != run_op:
                    left = _balanced(run_op, run) if run_op else left
                    run, run_op = [left], op
                run.append(right)
            else:
                if run_op:
                    left, run, run_op = _balanced(run_op, run), [], ""
                left = Bin(op, left, right)
        return _balanced(run_op, run) if run_op else left

    def unary(self) -> Expr:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise BadQuery(f"expression nested too deeply (at most {MAX_DEPTH} levels)")
        try:
            tok = self.peek()
            if tok == ("name", "not"):
                self.take()
                return Not(self.expr(3))
            if tok == ("punct", "-"):
                self.take()
                return Neg(self.unary())
            return self.primary()
        finally:
            self.depth -= 1

    def primary(self) -> Expr:
        kind, text = self.take()
        if kind == "punct" and text == "(":
            inner = self.expr()
            self.expect(")")
            return inner
        if kind == "str":
            return Lit(text[1:-1].replace("''", "'"), "str")
        if kind == "geo":
            body = text[text.index("'") + 1 : -1].replace("''", "'")
            return Lit(parse_wkt(body), "geo")
        if kind == "time":
            if "/" in text:
                raise Unsupported("time interval literals are not supported in $filter")
            return Lit(parse_time(text), "time")
        if kind == "date":
            return Lit(parse_time(text), "time")
        if kind == "num":
            return _number(text)
        if kind == "name":
            low = text.lower()
            if low in ("true", "false"):
                return Lit(low == "true", "bool")
            if low == "null":
                return Lit(None, "null")
            if self.peek() == ("punct", "("):
                return self.call(text)
            if text in BINDING:
                raise BadQuery(f"operator {text!r} where a value was expected in {self.text!r}")
            return Path(tuple(text.split("/")))
        raise BadQuery(f"unexpected {text!r} in {self.text!r}")

    def call(self, name: str) -> Expr:
        fn = name.lower()
        if fn in ("any", "all") or name.endswith("/any") or name.endswith("/all"):
            raise Unsupported("lambda operators (any, all) are not supported")
        if fn not in FUNCTIONS:
            raise BadQuery(f"unknown function {name!r}")
        self.expect("(")
        args: list[Expr] = []
        if self.peek() != ("punct", ")"):
            args.append(self.expr())
            while self.peek() == ("punct", ","):
                self.take()
                args.append(self.expr())
        self.expect(")")
        lo, hi = FUNCTIONS[fn]
        if not lo <= len(args) <= hi:
            raise BadQuery(f"{fn} takes {lo}..{hi} arguments, got {len(args)}")
        return Call(fn, tuple(args))


def _balanced(op: str, items: list[Expr]) -> Expr:
    if len(items) == 1:
        return items[0]
    mid = len(items) // 2
    return Bin(op, _balanced(op, items[:mid]), _balanced(op, items[mid:]))


def _number(text: str) -> Lit:
    if len(text) > MAX_NUMBER_CHARS:
        raise BadQuery(f"number too long: {text[:20]}... (at most {MAX_NUMBER_CHARS} characters)")
    if any(c in text for c in ".eE"):
        value = float(text)
        if not math.isfinite(value):
            raise BadQuery(f"number out of range: {text}")
        return Lit(value, "num")
    n = int(text)
    if n > MAX_INT:
        raise BadQuery(f"number out of range: {text} (integers up to {MAX_INT})")
    return Lit(n, "num")


def _check_length(option: str, text: str) -> None:
    if len(text) > MAX_OPTION_CHARS:
        raise BadQuery(f"{option} is too long ({len(text)} characters, at most {MAX_OPTION_CHARS})")


def _cost(node: Expr) -> int:
    """Roughly what the node costs SQLite's parser stack (it holds about 100): a function call
    several entries, a date part (CAST(strftime(...))) or a navigation (EXISTS) more."""
    if isinstance(node, Call):
        return 7 if node.name in DATE_FUNCTIONS else 4
    if isinstance(node, Path) and len(node.segments) > 1:
        return 7
    if isinstance(node, Not):
        return 2
    return 1


def _depth(e: Expr) -> tuple[int, int]:
    """How deep the tree nests, in nodes and in parser stack (without recursion: the tree is
    not yet known to be shallow)."""
    deepest, costliest = 0, 0
    stack: list[tuple[Expr, int, int]] = [(e, 1, _cost(e))]
    while stack:
        node, d, c = stack.pop()
        deepest, costliest = max(deepest, d), max(costliest, c)
        kids: tuple[Expr, ...] = ()
        if isinstance(node, Bin):
            kids = (node.left, node.right)
        elif isinstance(node, Not | Neg):
            kids = (node.expr,)
        elif isinstance(node, Call):
            kids = node.args
        stack += [(k, d + 1, c + _cost(k)) for k in kids]
    return deepest, costliest


def _shallow(e: Expr) -> Expr:
    depth, cost = _depth(e)
    if depth > MAX_DEPTH or cost > MAX_SQL_NESTING:
        raise BadQuery(
            f"expression nested too deeply (at most {MAX_DEPTH} levels, fewer with functions)"
        )
    return e


def parse_filter(text: str) -> Expr:
    p = _Parser(text, "$filter")
    if not p.toks:
        raise BadQuery("$filter is empty")
    e = p.expr()
    if p.peek() is not None:
        raise BadQuery(f"unexpected {p.peek()[1]!r} in $filter {text!r}")  # type: ignore[index]
    return _shallow(e)


def parse_orderby(text: str) -> list[tuple[Expr, bool]]:
    """(expression, descending) pairs."""
    out: list[tuple[Expr, bool]] = []
    p = _Parser(text, "$orderby")
    while True:
        if len(out) >= MAX_ITEMS:
            raise BadQuery(f"$orderby has too many items (at most {MAX_ITEMS})")
        e = _shallow(p.expr())
        desc = False
        tok = p.peek()
        if tok is not None and tok[0] == "name" and tok[1].lower() in ("asc", "desc"):
            desc = p.take()[1].lower() == "desc"
        out.append((e, desc))
        tok = p.peek()
        if tok is None:
            return out
        if tok != ("punct", ","):
            raise BadQuery(f"unexpected {tok[1]!r} in $orderby {text!r}")
        p.take()


# ---- geometry (WKT) ---------------------------------------------------------------------

Ring = list[tuple[float, float]]


@dataclass(frozen=True)
class Geometry:
    kind: str  # point | polygon | multipolygon | linestring
    polygons: tuple[tuple[Ring, ...], ...] = ()  # rings per polygon: outer then holes
    points: tuple[tuple[float, float], ...] = ()


_NUMS = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _ring(text: str) -> Ring:
    pts: Ring = []
    for pair in text.split(","):
        nums = _NUMS.findall(pair)
        if len(nums) < 2:
            raise BadQuery(f"bad coordinate {pair.strip()!r} in WKT")
        pts.append((float(nums[0]), float(nums[1])))
    return pts


def parse_wkt(text: str) -> Geometry:
    t = text.strip()
    if t.upper().startswith("SRID="):
        t = t.split(";", 1)[-1].strip()
    m = re.match(r"(?i)(POINT|POLYGON|MULTIPOLYGON|LINESTRING)\s*\((.*)\)\s*$", t, re.S)
    if m is None:
        raise BadQuery(f"unsupported or malformed WKT: {text[:60]!r}")
    kind, body = m.group(1).lower(), m.group(2)
    if kind in ("point", "linestring"):
        return Geometry(kind, points=tuple(_ring(body)))
    if kind == "polygon":
        rings = tuple(_ring(r) for r in re.findall(r"\(([^()]*)\)", body))
        if not rings or any(len(r) < 3 for r in rings):
            raise BadQuery("a polygon needs rings of at least 3 points")
        return Geometry(kind, polygons=(rings,))
    polys = []
    for poly in re.findall(r"\(((?:\s*\([^()]*\)\s*,?)+)\)", body):
        polys.append(tuple(_ring(r) for r in re.findall(r"\(([^()]*)\)", poly)))
    if not polys:
        raise BadQuery("empty MULTIPOLYGON")
    return Geometry("polygon", polygons=tuple(polys))


def _in_ring(x: float, y: float, ring: Ring) -> bool:
    inside = False
    j = len(ring) - 1
    for i in range(len(ring)):
        xi, yi = ring[i]
        xj, yj = ring[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def point_in(geom: Geometry, x: float, y: float) -> bool:
    if geom.kind == "point":
        return any(abs(px - x) < 1e-12 and abs(py - y) < 1e-12 for px, py in geom.points)
    if geom.kind == "linestring":
        return False
    for rings in geom.polygons:
        if _in_ring(x, y, rings[0]) and not any(_in_ring(x, y, h) for h in rings[1:]):
            return True
    return False


def distance(geom: Geometry, x: float, y: float) -> float:
    """Planar distance in coordinate units (degrees), as STA's geo.distance defines it."""
    if point_in(geom, x, y):
        return 0.0
    pts = list(geom.points) + [p for rings in geom.polygons for r in rings for p in r]
    best = float("inf")
    segs: list[tuple[tuple[float, float], tuple[float, float]]] = []
    if geom.kind == "linestring":
        segs = list(itertools.pairwise(pts))
    for rings in geom.polygons:
        for r in rings:
            segs += list(zip(r, r[1:] + r[:1], strict=False))
    for ax, ay in pts:
        best = min(best, ((ax - x) ** 2 + (ay - y) ** 2) ** 0.5)
    for (ax, ay), (bx, by) in segs:
        dx, dy = bx - ax, by - ay
        n = dx * dx + dy * dy
        if n == 0:
            continue
        t = max(0.0, min(1.0, ((x - ax) * dx + (y - ay) * dy) / n))
        best = min(best, ((ax + t * dx - x) ** 2 + (ay + t * dy - y) ** 2) ** 0.5)
    return best


# ---- the query options ------------------------------------------------------------------


@dataclass
class Expand:
    nav: str
    options: Options


@dataclass
class Options:
    filter: Expr | None = None
    orderby: list[tuple[Expr, bool]] = field(default_factory=list)
    top: int | None = None
    skip: int = 0
    count: bool = False
    select: list[str] | None = None
    expand: list[Expand] = field(default_factory=list)
    result_format: str | None = None


KNOWN = {"$filter", "$orderby", "$top", "$skip", "$count", "$select", "$expand", "$resultformat"}
NOT_SERVED = {"$search", "$format", "$apply", "$compute", "$levels", "$id", "$index"}


def _split(text: str, sep: str) -> list[str]:
    """Split at ``sep`` outside parentheses and quotes."""
    parts: list[str] = []
    cur: list[str] = []
    depth, quoted = 0, False
    for ch in text:
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
            if depth < 0:
                raise BadQuery(f"unbalanced parentheses in {text!r}")
        if ch == sep and depth == 0 and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth or quoted:
        raise BadQuery(f"unbalanced parentheses or quotes in {text!r}")
    parts.append("".join(cur))
    return parts


def _int(name: str, text: str) -> int:
    digits = text.strip(" ")
    if _COUNT.fullmatch(digits) is None:
        raise BadQuery(f"{name} must be a non-negative integer of at most 18 digits")
    return int(digits)


def parse_options(params: Mapping[str, str], depth: int = 0) -> Options:
    if depth > 5:
        raise BadQuery("$expand is nested too deeply (at most 5 levels)")
    o = Options()
    for raw, value in params.items():
        key = raw.lower()
        if not key.startswith("$"):
            continue
        if key in NOT_SERVED:
            raise Unsupported(f"{raw} is not supported")
        if key not in KNOWN:
            raise BadQuery(f"unknown query option {raw!r}")
        if key == "$filter":
            o.filter = parse_filter(value)
        elif key == "$orderby":
            o.orderby = parse_orderby(value)
        elif key == "$top":
            o.top = _int(raw, value)
        elif key == "$skip":
            o.skip = _int(raw, value)
        elif key == "$count":
            if value not in ("true", "false"):
                raise BadQuery("$count must be true or false")
            o.count = value == "true"
        elif key == "$select":
            _check_length(raw, value)
            o.select = [s.strip() for s in value.split(",") if s.strip()]
            if not o.select:
                raise BadQuery("$select is empty")
            if len(o.select) > MAX_ITEMS:
                raise BadQuery(f"$select has too many items (at most {MAX_ITEMS})")
        elif key == "$resultformat":
            if value != "dataArray":
                raise Unsupported(f"$resultFormat={value!r} is not supported (only dataArray)")
            o.result_format = value
        elif key == "$expand":
            _check_length(raw, value)
            o.expand = _expands(value, depth)
    return o


def _expands(text: str, depth: int) -> list[Expand]:
    out: list[Expand] = []
    items = _split(text, ",")
    if len(items) > MAX_ITEMS:
        raise BadQuery(f"$expand has too many items (at most {MAX_ITEMS})")
    for item in items:
        item = item.strip()
        if not item:
            raise BadQuery("empty item in $expand")
        opts: dict[str, str] = {}
        if "(" in item:
            if not item.endswith(")"):
                raise BadQuery(f"bad $expand item {item!r}")
            head, inner = item[: item.index("(")], item[item.index("(") + 1 : -1]
            for part in _split(inner, ";"):
                if not part.strip():
                    continue
                if "=" not in part:
                    raise BadQuery(f"expected $option=value in $expand, got {part!r}")
                k, v = part.split("=", 1)
                opts[k.strip()] = v
        else:
            head = item
        navs = [h for h in head.split("/")]
        if any(not re.fullmatch(r"[A-Za-z]+", n) for n in navs):
            raise BadQuery(f"bad navigation path in $expand: {head!r}")
        inner_opts = parse_options(opts, depth + 1)
        # A/B(opts) is A expanded with B(opts) inside
        for nav in reversed(navs[1:]):
            inner_opts = Options(expand=[Expand(nav, inner_opts)])
        out.append(Expand(navs[0], inner_opts))
    return _merge(out)


def _merge(items: list[Expand]) -> list[Expand]:
    """``Datastreams/Sensor,Datastreams/ObservedProperty`` expands Datastreams once."""
    merged: dict[str, Expand] = {}
    for e in items:
        if e.nav in merged:
            merged[e.nav].options.expand = _merge(merged[e.nav].options.expand + e.options.expand)
        else:
            merged[e.nav] = e
    return list(merged.values())
