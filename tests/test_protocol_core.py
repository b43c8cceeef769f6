"""Topics, limits and robustness of the codec on CPython (vectors cover the payload rules)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import codec, topics
from protocols.errors import ProtocolError
from protocols.schema_defs import MAX_PAYLOAD, MAX_READINGS
from protocols.topics import Topic

T = 1795582800


def test_topic_round_trip_and_properties() -> None:
    t = Topic("RTD-0001", "n1", topics.MEAS)
    assert str(t) == "streetpole/v1/RTD-0001/n1/meas"
    assert Topic.parse(str(t)) == t
    assert Topic.parse(b"streetpole/v1/RTD-0001/n1/meas") == t
    assert (t.qos, t.retain, t.direction) == (1, False, "up")
    assert t.sibling(topics.STATE).retain is True
    assert Topic("p", "n", topics.CONFIG).retain is True
    assert Topic("p", "n", topics.PRESENCE).qos == 0


@pytest.mark.parametrize("bad", ["", "a/b", "a+", "a#", "$SYS", "a b", "a\tb", "-a", "é", "x" * 33])
def test_ids_refuse_wildcards_separators_and_whitespace(bad: str) -> None:
    assert not topics.is_valid_id(bad)
    with pytest.raises(ProtocolError) as exc:
        Topic(bad, "n1", topics.MEAS)
    assert exc.value.field == "topic.pole"


def test_subscription_filters() -> None:
    assert topics.subscription(topics.MEAS) == "streetpole/v1/+/+/meas"
    assert topics.subscription("#", pole="p1") == "streetpole/v1/p1/+/#"
    with pytest.raises(ProtocolError):
        topics.subscription(topics.MEAS, pole="p#")


def test_oversized_payload_is_refused_before_parsing() -> None:
    payload = b'{"boot":1,"seq":1,"readings":[' + b" " * MAX_PAYLOAD + b"]}"
    with pytest.raises(ProtocolError) as exc:
        codec.decode(topics.MEAS, payload)
    assert exc.value.field == "payload" and "limit" in exc.value.reason


def test_encode_refuses_what_decode_would_refuse() -> None:
    with pytest.raises(ProtocolError) as exc:
        codec.encode(topics.MEAS, {"boot": 1, "seq": 1, "readings": [{"ts": T, "q": "pm25"}]})
    assert exc.value.field == "readings[0].v"


def test_encode_is_compact_json() -> None:
    data = codec.encode(topics.PRESENCE, {"ts": T, "src": "motion"})
    assert data == b'{"ts":1795582800,"src":"motion"}'


def test_largest_batch_fits_the_payload_limit() -> None:
    reading = {
        "ts": T,
        "q": "atmosphericPressure",
        "v": 1013.2512345,
        "dur": 86400,
        "src": "a" * 32,
        "flags": ["humidity_high", "warming_up", "uncalibrated"],
    }
    batch = {
        "boot": 2**32 - 1,
        "seq": 2**32 - 1,
        "readings": [dict(reading, ts=T + i) for i in range(MAX_READINGS)],
    }
    with pytest.raises(ProtocolError):  # the worst case is over; a realistic batch is far under
        codec.encode(topics.MEAS, batch)
    realistic = {
        "boot": 5,
        "seq": 99,
        "readings": [
            {"ts": T + i, "q": "pm25", "v": 12.3, "dur": 60, "src": "air"}
            for i in range(MAX_READINGS)
        ],
    }
    assert len(codec.encode(topics.MEAS, realistic)) < MAX_PAYLOAD


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(["ts", "q", "v", "boot", "seq", "readings", "x"]) | st.text(max_size=5),
            children,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(channel=st.sampled_from(sorted(codec.BUILDERS)), value=json_values)
def test_decoder_never_fails_other_than_with_a_protocol_error(channel: str, value: object) -> None:
    try:
        msg = codec.decode(channel, json.dumps(value).encode())
    except ProtocolError as e:
        assert e.field and e.reason
    else:
        assert codec.decode(channel, codec.encode(channel, msg)) == msg


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=200))
def test_decoder_survives_arbitrary_bytes(payload: bytes) -> None:
    try:
        codec.decode(topics.MEAS, payload)
    except ProtocolError as e:
        assert e.field
