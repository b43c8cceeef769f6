"""SensorThings Observations on the PostgreSQL store: ``ObservationQuery`` rendered in the
PostgreSQL dialect over the store's raw points (hourly raw partitions and packed hours, see
pg_schema), answering as ``SqliteStore.observations`` does: the same rows in the same order,
the same counts, counted streams as sums per window.

Packed hours are unnested only where a query can need them: the streams asked for and, when the
filter bounds the time (``phenomenonTime gt ... and ...``, the keyset pages of CSV), the hours
in those bounds. The request's time budget is the statement's ``statement_timeout``.
"""

from __future__ import annotations

import math
from typing import Any

import psycopg
from psycopg import errors

from controller.opendata.dialects import POSTGRES
from controller.opendata.query import BadQuery, Bin, Expr, Lit, Path, parse_time
from controller.opendata.sql import observation_sql
from controller.store.base import ObservationPage, ObservationQuery, QueryTooExpensive
from controller.store.pg_schema import HOUR, RAW_POINTS

TIME_PATHS = {("phenomenonTime",), ("resultTime",)}  # both are the column ts
FLIP = {"gt": "lt", "ge": "le", "lt": "gt", "le": "ge", "eq": "eq"}


def time_bounds(e: Expr | None) -> tuple[int | None, int | None]:
    """Whole seconds lo <= ts <= hi that every row meeting ``e`` keeps (None: unbounded),
    from the comparisons of the time with a literal joined by ``and`` at the top."""
    lo: int | None = None
    hi: int | None = None
    todo = [e] if e is not None else []
    while todo:
        node = todo.pop()
        if not isinstance(node, Bin):
            continue
        if node.op == "and":
            todo += [node.left, node.right]
            continue
        op, left, right = node.op, node.left, node.right
        if isinstance(left, Lit) and isinstance(right, Path):
            op, left, right = FLIP.get(op, ""), right, left
        if not (isinstance(left, Path) and left.segments in TIME_PATHS and isinstance(right, Lit)):
            continue
        t = _seconds(right)
        if t is None or op not in FLIP:
            continue
        if op in ("gt", "ge", "eq"):
            lo = math.floor(t) if lo is None else max(lo, math.floor(t))
        if op in ("lt", "le", "eq"):
            hi = math.ceil(t) if hi is None else min(hi, math.ceil(t))
    return lo, hi


def _seconds(lit: Lit) -> float | None:
    if lit.kind == "str":
        try:
            return parse_time(lit.value)
        except BadQuery:
            return None
    if lit.kind in ("num", "time") and not isinstance(lit.value, bool):
        value = float(lit.value)
        return value if math.isfinite(value) and abs(value) < 2**62 else None
    return None


def _raw(streams: list[int], lo: int | None, hi: int | None) -> str:
    """The raw points of ``streams`` with lo <= ts <= hi, from both tables."""
    ids = ",".join(str(int(s)) for s in streams)
    cond = [f"stream IN ({ids})"]
    rcond = [f"r.dev IN (SELECT dev FROM streams WHERE id IN ({ids}))"]
    pcond = [f"p.stream IN ({ids})"]
    if lo is not None:
        cond.append(f"ts >= {lo}")
        rcond.append(f"r.ts >= {lo}")
        pcond.append(f"p.bucket > {lo - HOUR}")
    if hi is not None:
        cond.append(f"ts <= {hi}")
        rcond.append(f"r.ts <= {hi}")
        pcond.append(f"p.bucket <= {hi}")
    return RAW_POINTS.format(
        cond=" AND ".join(cond), rcond=" AND ".join(rcond), pcond=" AND ".join(pcond)
    )


def observations(conn: psycopg.Connection[Any], q: ObservationQuery) -> ObservationPage:
    counted = set(q.counted)
    plain = [s for s in q.streams if s not in counted]
    summed = [s for s in q.streams if s in counted]
    if not plain and not summed:
        return ObservationPage([], 0 if q.count else None)
    cond, params, order, order_params = observation_sql(POSTGRES, q.filter, q.orderby)
    lo, hi = time_bounds(q.filter)
    parts = []
    if summed:
        w = int(q.count_window)
        # a window ending at bts holds the points bts - w < ts <= bts
        raw = _raw(summed, None if lo is None else lo - w, hi)
        parts.append(
            "SELECT stream, bts AS ts, v, dur, flags FROM (SELECT stream,"
            f" ((ts - 1) / {w} + 1) * {w} AS bts, sum(v) AS v, {w} AS dur, NULL::text AS flags"
            f" FROM ({raw}) r GROUP BY 1, 2) c WHERE bts <= {int(q.until)}"
        )
    if plain:
        parts.append(_raw(plain, lo, hi))
    sql = "SELECT stream, ts, v, dur, flags FROM (" + " UNION ALL ".join(parts) + ") o"
    if cond:
        sql += f" WHERE {cond}"
    try:
        with conn.transaction():
            conn.execute(
                "SELECT set_config('statement_timeout', %s, true)", (str(max(1, q.budget_ms)),)
            )
            rows = conn.execute(
                f"{sql} ORDER BY {', '.join(order)} LIMIT %s OFFSET %s",
                [*params, *order_params, q.limit, q.offset],
            ).fetchall()
            total = None
            if q.count:
                got = conn.execute(f"SELECT count(*) FROM ({sql}) t", params).fetchone()
                total = int(got[0]) if got else 0
    except errors.QueryCanceled as e:
        raise QueryTooExpensive(f"query ran past {q.budget_ms} ms") from e
    except psycopg.Error as e:
        # classes 22 (data) and 42 (no such operator, ...): what SQLite would have coerced (a
        # number against a string) or what cannot be computed (a time out of range)
        if (e.sqlstate or "")[:2] not in ("22", "42"):
            raise
        raise BadQuery(f"query could not run: {e.diag.message_primary or e}") from e
    return ObservationPage([tuple(r) for r in rows], total)
