"""A faster decoder for measurement batches: the same verdicts as ``codec.decode("meas", ...)``.

Why: decoding was the largest single cost left in ingest. ``codec.decode`` parses with orjson
into dicts, then walks them three times (the compiled JSON Schema, the semantic rules, the row
building); msgspec parses and checks types, ranges, enums, lengths and unknown fields in one pass
in C, into typed structs (figures: docs/performance.md, "Ingest").

What it does not check in C, it checks here with the codec's own tables: the ID pattern of
``src`` (``re.fullmatch``: the schema's ``^...$`` with ``re.search`` would let a trailing newline
through), repeated flags, plausible ranges and repeated readings
(``protocols.outgoing.check_meas``'s rules written again over the structs, cheaper than calling
it on dicts; tests keep the two in step).

Whatever this decoder refuses, ``codec.decode`` decides again, naming the refused field, so this
path may only ever accept less, never more; ``tests/test_ingest_decode.py`` checks both agree on
every test vector and on random payloads. One difference in what is returned: ``v`` is always a
float (the store keeps it as REAL either way). The structs are built from
``protocols.schema_defs.meas()``: a test fails if the schema gains a field they do not know.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from protocols import MAX_PAYLOAD, codec, topics
from protocols.quantities import QUANTITIES
from protocols.schema_defs import meas as _meas_schema

SCHEMA = _meas_schema()
_TOP = SCHEMA["properties"]
_R = SCHEMA["$defs"]["reading"]["properties"]


def _range(p: dict[str, Any]) -> Meta:
    return Meta(ge=p["minimum"], le=p["maximum"])


if TYPE_CHECKING:  # mypy cannot follow an enum built at run time
    Quantity: TypeAlias = str
    Flag: TypeAlias = str
else:
    Quantity = Literal[tuple(_R["q"]["enum"])]
    Flag = Literal[tuple(_R["flags"]["items"]["enum"])]


SrcId = Annotated[str, Meta(min_length=_R["src"]["minLength"], max_length=_R["src"]["maxLength"])]


class Reading(Struct, forbid_unknown_fields=True, omit_defaults=True):
    ts: Annotated[int, _range(_R["ts"])]
    q: Quantity
    v: float
    dur: Annotated[int, _range(_R["dur"])] | UnsetType = UNSET
    src: SrcId | UnsetType = UNSET
    flags: Annotated[list[Flag], Meta(max_length=_R["flags"]["maxItems"])] | UnsetType = UNSET


_READINGS = _TOP["readings"]


class Meas(Struct, forbid_unknown_fields=True):
    boot: Annotated[int, _range(_TOP["boot"])]
    seq: Annotated[int, _range(_TOP["seq"])]
    readings: Annotated[
        list[Reading], Meta(min_length=_READINGS["minItems"], max_length=_READINGS["maxItems"])
    ]


_decoder = msgspec.json.Decoder(Meas)
_ID = re.compile(_R["src"]["pattern"].removeprefix("^").removesuffix("$"))
# ``src`` values seen to match: a street uses a handful (air, noise, motion, lamp), so the regex
# runs once per value, not once per reading. Bounded like the topic cache.
_good_src: set[str] = set()
SRC_MAX = 10_000


def _valid(m: Meas) -> bool:
    """The checks msgspec does not make (see the module docstring)."""
    seen = set()
    for r in m.readings:
        lo_hi = QUANTITIES[r.q]  # the enum guarantees it is known
        v = r.v
        if not lo_hi[1] <= v <= lo_hi[2]:
            return False
        src = r.src
        if src is not UNSET and src not in _good_src:
            if _ID.fullmatch(src) is None:
                return False
            if len(_good_src) >= SRC_MAX:
                _good_src.clear()
            _good_src.add(src)
        flags = r.flags
        if flags is not UNSET and len(set(flags)) != len(flags):
            return False
        seen.add((r.ts, r.q, src))
    return len(seen) == len(m.readings)


def decode_meas(payload: bytes) -> dict[str, Any]:
    """The measurement batch in ``payload``, as ``codec.decode("meas", payload)`` returns it
    (plain dicts); ProtocolError naming the field if it is refused."""
    if len(payload) <= MAX_PAYLOAD:
        try:
            m = _decoder.decode(payload)
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeError):
            pass  # invalid UTF-8 in a string raises UnicodeDecodeError: the codec names it
        else:
            if _valid(m):
                return {
                    "boot": m.boot,
                    "seq": m.seq,
                    "readings": msgspec.to_builtins(m.readings),
                }
    msg: dict[str, Any] = codec.decode(topics.MEAS, payload)  # the verdict, and its reason
    return msg
