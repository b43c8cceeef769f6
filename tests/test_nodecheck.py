"""The node's generated checks (protocols/nodecheck, made by protocols/checkgen.py) must do what
the validator does with the schema: accept the same messages and refuse the others with the same
field and reason, on every test vector and on variations of them (fields dropped, replaced by
values of other types and ranges, unknown fields added). On MicroPython the vectors run through
them in tests/test_protocol_vectors.py."""

from __future__ import annotations

import copy
import importlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols import checkgen, codec
from protocols.errors import ProtocolError
from protocols.validate import validate
from tests.harness.paths import PROTOCOLS

CHANNELS = sorted(codec.BUILDERS)
VECTORS = [
    json.loads(line)
    for path in sorted((PROTOCOLS / "vectors").glob("*.jsonl"))
    for line in path.read_text().splitlines()
    if json.loads(line).get("channel") in CHANNELS and "payload" in json.loads(line)
]


def verdict(fn: Any, *args: Any) -> tuple[str, str] | None:
    try:
        fn(*args)
    except ProtocolError as e:
        return (e.field, e.reason)
    return None


def both(channel: str, msg: Any) -> tuple[Any, Any]:
    node = importlib.import_module(f"protocols.nodecheck.{channel}").check
    return verdict(node, msg), verdict(validate, msg, codec.schema(channel))


@pytest.mark.parametrize("vector", VECTORS, ids=[f"{v['channel']}: {v['name']}" for v in VECTORS])
def test_vectors_same_verdict(vector: dict[str, Any]) -> None:
    node, ref = both(vector["channel"], vector["payload"])
    assert node == ref
    if vector["valid"]:  # invalid ones may break a rule beyond the schema (codec._SEMANTIC)
        assert node is None


def test_refuses_what_it_cannot_check() -> None:
    with pytest.raises(ValueError, match="cannot do"):
        checkgen.render("x", {"type": "object", "oneOf": [{"type": "string"}]})


REPLACEMENTS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [at]
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, (*at, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _paths(v, (*at, i))
    return found


@st.composite
def variations(draw: st.DrawFn) -> tuple[str, Any]:
    vector = draw(st.sampled_from([v for v in VECTORS if v["valid"]]))
    msg = copy.deepcopy(vector["payload"])
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(msg)
        path = draw(st.sampled_from(paths))
        if not path:
            continue
        parent = msg
        for step in path[:-1]:
            parent = parent[step]
        what = draw(st.sampled_from(["replace", "drop", "add"]))
        if what == "replace":
            parent[path[-1]] = draw(REPLACEMENTS)
        elif what == "drop" and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(REPLACEMENTS)
    return vector["channel"], msg


@pytest.mark.slow
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(variations())
def test_variations_same_verdict(case: tuple[str, Any]) -> None:
    channel, msg = case
    node, ref = both(channel, msg)
    assert node == ref, json.dumps(msg, default=str)
