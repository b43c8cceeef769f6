"""controller/ingest/decode.py and fastmeas.py without a broker: the sorting of a received batch,
with the parsed-topic cache in the way (a bad topic is refused every time, the bound holds), and
the msgspec decoder of measurement batches, which must give the codec's verdicts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.ingest import decode, fastmeas
from controller.ingest.decode import sort_messages
from protocols import codec, topics
from protocols.errors import ProtocolError
from tests.ingest_helpers import meas, meas_topic

REVERT = b'{"id":"c-1","ts":1795582800,"cmd":"revert"}'


def test_good_and_bad_topics_sorted_the_same_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decode, "TOPICS_MAX", 3)  # the cache is cleared several times below
    good = [(meas_topic(f"p{i % 5}"), meas(i)) for i in range(20)]
    bad = [
        ("streetpole/v1/p 1/n1/meas", meas(1)),  # a space in the pole id
        ("streetpole/v1/p1/n1/cmd", REVERT),  # a controller-to-node channel
        ("streetpole/v1/p1/n1/meas", b"{"),  # the topic is fine, the payload not
    ]
    for _ in range(2):
        s = sort_messages(good + bad)
        assert [(b.pole, b.seq) for b in s.batches] == [(f"p{i % 5}", i) for i in range(20)]
        assert [(d.topic, d.field) for d in s.dead] == [
            ("streetpole/v1/p 1/n1/meas", "topic.pole"),
            ("streetpole/v1/p1/n1/cmd", "topic.channel"),
            ("streetpole/v1/p1/n1/meas", "payload"),
        ]
        assert s.channels == {"meas": 20}


# ---- the msgspec decoder of measurement batches agrees with the codec ----------------------

MEAS_VECTORS = [
    json.loads(line)
    for line in (Path(__file__).parent.parent / "protocols/vectors/meas.jsonl")
    .read_text()
    .split("\n")
    if line
]


def _payload(vector: dict[str, Any]) -> bytes:
    raw = vector.get("raw")
    return raw.encode() if raw is not None else json.dumps(vector["payload"]).encode()


def _verdict(decoder: Callable[[bytes], Any], payload: bytes) -> tuple[str, Any]:
    """("ok", the message with every v as float) or ("refused", the field named)."""
    try:
        msg = decoder(payload)
    except ProtocolError as e:
        return "refused", e.field
    readings = [{**r, "v": float(r["v"])} for r in msg["readings"]]
    return "ok", {**msg, "readings": readings}


def _codec_meas(payload: bytes) -> Any:
    return codec.decode(topics.MEAS, payload)


@pytest.mark.parametrize("vector", MEAS_VECTORS, ids=lambda v: v["name"])
def test_fast_meas_decoder_agrees_on_every_vector(vector: dict[str, Any]) -> None:
    payload = _payload(vector)
    fast = _verdict(fastmeas.decode_meas, payload)
    assert fast == _verdict(_codec_meas, payload)
    assert (fast[0] == "ok") == vector["valid"]


def test_fast_meas_decoder_takes_the_common_batch_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """A good batch never reaches the codec (else this decoder would save nothing)."""

    def refuse(*_: Any) -> None:
        raise AssertionError("codec.decode called for a good batch")

    monkeypatch.setattr(codec, "decode", refuse)
    valid = [v for v in MEAS_VECTORS if v["valid"]]
    assert valid
    for vector in valid:
        assert fastmeas.decode_meas(_payload(vector))["readings"]
    assert fastmeas.decode_meas(meas(7))["seq"] == 7


def test_fast_meas_structs_know_every_field_of_the_schema() -> None:
    """A field added to the schema must be added to the structs too (else: refused here, then
    accepted by the codec, at the old cost)."""
    reading = fastmeas.SCHEMA["$defs"]["reading"]
    assert set(fastmeas.Reading.__struct_fields__) == set(reading["properties"])
    fields = fastmeas.Reading.__struct_fields__
    required = fields[: len(fields) - len(fastmeas.Reading.__struct_defaults__)]
    assert set(required) == set(reading["required"])
    assert set(fastmeas.Meas.__struct_fields__) == set(fastmeas.SCHEMA["properties"])
    assert set(fastmeas.SCHEMA["required"]) == set(fastmeas.Meas.__struct_fields__)


GOOD_READING = {"ts": 1795582800, "q": "pm25", "v": 12.5, "dur": 60, "src": "air"}
reading_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.sampled_from([1577836800, 4102444800, 4102444801, 1795582800.0, 0, 86400, 86401]),
    st.sampled_from(["air", "a", "x" * 32, "x" * 33, "", "ab\n", "a b", "é", "_a", "a-_9"]),
    st.sampled_from(["pm25", "LAeq", "illuminanceLevel", "nope"]),
    st.lists(st.sampled_from(["indicative", "overload", "bogus"]), max_size=9),
)
readings = st.lists(
    st.dictionaries(
        st.sampled_from(["ts", "q", "v", "dur", "src", "flags", "x"]), reading_values, max_size=7
    ).map(lambda extra: {**GOOD_READING, **extra})
    | st.just(GOOD_READING),
    max_size=66,
)
batches = st.fixed_dictionaries(
    {
        "boot": reading_values | st.integers(0, 2**32),
        "seq": st.integers(-1, 2**32),
        "readings": readings,
    },
    optional={"x": st.integers()},
)


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(batch=batches, spaced=st.booleans())
def test_fast_meas_decoder_agrees_on_random_batches(batch: dict[str, Any], spaced: bool) -> None:
    text = json.dumps(batch, separators=(", ", ": ") if spaced else (",", ":"))
    payload = text.encode()
    assert _verdict(fastmeas.decode_meas, payload) == _verdict(_codec_meas, payload)


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=200))
def test_fast_meas_decoder_agrees_on_arbitrary_bytes(payload: bytes) -> None:
    assert _verdict(fastmeas.decode_meas, payload) == _verdict(_codec_meas, payload)
