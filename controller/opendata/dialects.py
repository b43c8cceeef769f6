"""The SQL each database speaks for a ``$filter`` or ``$orderby`` (one handler per database, as
FROST-Server has): ``sql.Compiler`` walks the neutral tree and asks its dialect for every
fragment that differs between engines.

- ``SqliteDialect``: the catalog (always SQLite, in memory) and ``SqliteStore``.
- ``PostgresDialect``: ``PostgresStore``'s Observations. It gives the answers SQLite gives:
  SQLite's rules are written out where PostgreSQL's differ (``round`` halves away from zero,
  ``%`` on the truncated integers and NULL for a zero divisor, division by zero NULL, ASCII-only
  ``tolower``/``toupper``, byte order for text, NULLs first when ascending), and every parameter
  carries its type. Where SQLite would silently coerce (a number compared with a string),
  PostgreSQL refuses the query; the store answers that with 400 and PostgreSQL's reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from controller.opendata.query import DATE_FUNCTIONS, Unsupported

# (sql, kind): kind is num | str | text (a text column) | time | bool | null | geo | any
Typed = tuple[str, str]
# The i-th argument of a call, compiled where the dialect writes it (see SqliteDialect.call)
Arg = Callable[[int], str]

SQL_OPS = {"eq": "=", "ne": "!=", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
ARITH = {"add": "+", "sub": "-", "mul": "*", "mod": "%"}
TEXT = ("str", "text")


class SqliteDialect:
    name: ClassVar[str] = "sqlite"
    true: ClassVar[str] = "1"
    false: ClassVar[str] = "0"
    DATE_PARTS: ClassVar[dict[str, str]] = dict(
        zip(DATE_FUNCTIONS, ("%Y", "%m", "%d", "%H", "%M", "%S"), strict=True)
    )

    def param(self, params: list[Any], value: Any) -> str:
        params.append(value)
        return "?"

    def compare(self, op: str, left: Typed, right: Typed) -> str:
        return f"({left[0]} {SQL_OPS[op]} {right[0]})"

    def arith(self, op: str, left: str, right: str) -> str:
        if op == "div":
            return f"({left} * 1.0 / {right})"
        return f"({left} {ARITH[op]} {right})"

    def order(self, sql: str, kind: str, desc: bool) -> str:
        return f"{sql} {'DESC' if desc else 'ASC'}"

    def json_path(self, column: str, key_param: str) -> str:
        return f"json_extract({column}, {key_param})"

    def call(self, fn: str, arg: Arg, n: int) -> Typed:
        """Function ``fn`` of STA (lower case) of ``n`` arguments; ``arg(i)`` compiles the i-th,
        appending its parameters, so it is called in the order the text holds them."""
        if fn == "endswith":
            return (
                f"(substr({arg(0)}, -length({arg(1)})) = {arg(1)} OR length({arg(1)}) = 0)",
                "bool",
            )
        if fn in self.DATE_PARTS:
            return (
                f"CAST(strftime('{self.DATE_PARTS[fn]}', {arg(0)}, 'unixepoch') AS INTEGER)",
                "num",
            )
        if fn == "fractionalseconds":
            return f"({arg(0)} - CAST({arg(0)} AS INTEGER))", "num"
        if fn == "date":
            return f"({arg(0)} - {arg(0)} % 86400)", "time"
        if fn == "time":
            return f"({arg(0)} % 86400)", "num"
        if fn == "totaloffsetminutes":  # times are UTC
            return "0", "num"
        if fn in ("round", "floor"):
            return f"{fn}({arg(0)})", "num"
        if fn == "ceiling":
            return f"ceil({arg(0)})", "num"
        if fn == "substringof":
            return f"(instr({arg(1)}, {arg(0)}) > 0)", "bool"
        if fn == "contains":
            return f"(instr({arg(0)}, {arg(1)}) > 0)", "bool"
        if fn == "startswith":
            return f"(instr({arg(0)}, {arg(1)}) = 1)", "bool"
        if fn == "length":
            return f"length({arg(0)})", "num"
        if fn == "indexof":
            return f"(instr({arg(0)}, {arg(1)}) - 1)", "num"
        if fn == "substring":
            if n == 3:
                return f"substr({arg(0)}, {arg(1)} + 1, {arg(2)})", "str"
            return f"substr({arg(0)}, {arg(1)} + 1)", "str"
        if fn == "tolower":
            return f"lower({arg(0)})", "str"
        if fn == "toupper":
            return f"upper({arg(0)})", "str"
        if fn == "trim":
            return f"trim({arg(0)})", "str"
        if fn == "concat":
            return f"({arg(0)} || {arg(1)})", "str"
        raise Unsupported(f"function {fn} is not supported")


_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_PG_PARTS = dict(
    zip(DATE_FUNCTIONS, ("YEAR", "MONTH", "DAY", "HOUR", "MINUTE", "SECOND"), strict=True)
)


class PostgresDialect(SqliteDialect):
    """psycopg's ``%s`` parameters, each cast to its type (an untyped one leaves PostgreSQL
    guessing, and ``length(%s)`` has no single answer); numbers computed in float8 as SQLite's
    REAL, which has no integer overflow to fail on."""

    name: ClassVar[str] = "postgresql"
    true: ClassVar[str] = "TRUE"
    false: ClassVar[str] = "FALSE"

    def param(self, params: list[Any], value: Any) -> str:
        params.append(value)
        if isinstance(value, bool):
            return "%s::boolean"
        if isinstance(value, int):
            return "%s::bigint"
        if isinstance(value, float):
            return "%s::float8"
        return "%s::text"

    def compare(self, op: str, left: Typed, right: Typed) -> str:
        # text compares byte by byte, as SQLite's BINARY collation does
        collate = ' COLLATE "C"' if left[1] in TEXT or right[1] in TEXT else ""
        return f"({left[0]} {SQL_OPS[op]} {right[0]}{collate})"

    def arith(self, op: str, left: str, right: str) -> str:
        if op == "div":  # SQLite: NULL for a zero divisor
            return f"(({left})::float8 / NULLIF(({right})::float8, 0))"
        if op == "mod":
            return self._mod(left, right)
        return f"(({left})::float8 {ARITH[op]} ({right})::float8)"

    @staticmethod
    def _mod(left: str, right: str) -> str:
        """SQLite's %: the remainder of both operands truncated to integers, with the sign of
        the dividend; NULL for a zero divisor."""
        return (
            f"mod(trunc(({left})::float8)::numeric, NULLIF(trunc(({right})::float8)::numeric, 0))"
        )

    def order(self, sql: str, kind: str, desc: bool) -> str:
        collate = ' COLLATE "C"' if kind in TEXT else ""
        # SQLite puts NULL before every value
        return f"{sql}{collate} {'DESC NULLS LAST' if desc else 'ASC NULLS FIRST'}"

    def json_path(self, column: str, key_param: str) -> str:
        raise Unsupported("JSON properties cannot be used in a condition on this store")

    def call(self, fn: str, arg: Arg, n: int) -> Typed:
        if fn == "endswith":
            return (
                f"(right({arg(0)}, length({arg(1)})) = {arg(1)} OR length({arg(1)}) = 0)",
                "bool",
            )
        if fn in _PG_PARTS:
            at = f"to_timestamp(({arg(0)})::float8) AT TIME ZONE 'UTC'"
            return f"floor(EXTRACT({_PG_PARTS[fn]} FROM {at}))::bigint", "num"
        if fn == "fractionalseconds":
            return f"(({arg(0)})::float8 - trunc(({arg(0)})::float8))", "num"
        if fn == "date":
            return f"(({arg(0)})::float8 - {self._mod(arg(0), '86400')})", "time"
        if fn == "time":
            return self._mod(arg(0), "86400"), "num"
        if fn == "round":  # SQLite: trunc(x + 0.5), mirrored below zero
            return (
                f"(CASE WHEN ({arg(0)})::float8 >= 0 THEN trunc(({arg(0)})::float8 + 0.5)"
                f" ELSE -trunc(0.5 - ({arg(0)})::float8) END)",
                "num",
            )
        if fn == "floor":
            return f"floor(({arg(0)})::float8)", "num"
        if fn == "ceiling":
            return f"ceil(({arg(0)})::float8)", "num"
        if fn == "substringof":
            return f"(strpos({arg(1)}, {arg(0)}) > 0)", "bool"
        if fn == "contains":
            return f"(strpos({arg(0)}, {arg(1)}) > 0)", "bool"
        if fn == "startswith":
            return f"(strpos({arg(0)}, {arg(1)}) = 1)", "bool"
        if fn == "indexof":
            return f"(strpos({arg(0)}, {arg(1)}) - 1)", "num"
        if fn == "substring":
            # SQLite counts a negative start from the end and a negative length backwards;
            # PostgreSQL does neither: only what both read alike is answered (else NULL)
            def whole(i: int) -> str:
                return f"trunc(({arg(i)})::float8)::int"

            if n == 3:
                return (
                    f"(CASE WHEN {whole(1)} >= 0 AND {whole(2)} >= 0"
                    f" THEN substr({arg(0)}, {whole(1)} + 1, {whole(2)}) END)",
                    "str",
                )
            return f"(CASE WHEN {whole(1)} >= 0 THEN substr({arg(0)}, {whole(1)} + 1) END)", "str"
        if fn == "tolower":  # SQLite's lower() changes ASCII letters only
            return f"translate({arg(0)}, '{_UPPER}', '{_UPPER.lower()}')", "str"
        if fn == "toupper":
            return f"translate({arg(0)}, '{_UPPER.lower()}', '{_UPPER}')", "str"
        if fn == "trim":  # spaces only, as SQLite's trim()
            return f"btrim({arg(0)}, ' ')", "str"
        return super().call(fn, arg, n)


SQLITE = SqliteDialect()
POSTGRES = PostgresDialect()
