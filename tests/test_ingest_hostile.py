"""A hostile or broken node cannot stop ingest with one message (issue #18, item 1).

Every payload here once raised out of ``sort_messages`` (or was taken in and then broke the
store or an operator endpoint). Each must now become a dead letter with a reason, and the
messages around it must flow.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.ingest.decode import sort_messages
from controller.store.ops import DeadLetter, OpsStore
from protocols import topics
from tests.ingest_helpers import T0, meas, meas_topic


def _topic(channel: str) -> str:
    return str(topics.Topic("p1", "n1", channel))


def _deep(n: int) -> bytes:
    return b"[" * n + b"]" * n


_READING = b'{"boot":1,"seq":1,"readings":[{"ts":%d,"q":"pm25","v":1,"src":' % T0
_EVENT = b'{"boot":1,"seq":1,"ts":%d,"kind":"alarm","code":"lampFailure","active":true,' % T0
_ACK = b'{"kind":"cmd","ts":%d,"status":"failed",' % T0
_STATE = b'{"status":"online","ts":%d,"boot":1,"uptime_s":5,"heap_free":5,"level":0.5,' % T0

KILLERS = {
    # invalid UTF-8 inside a JSON string
    "meas-ff-fe": (topics.MEAS, _READING + b'"a\xff\xfe"}]}'),
    "meas-overlong": (topics.MEAS, _READING + b'"a\xc0\xaf"}]}'),
    "event-ff": (topics.EVENT, _EVENT + b'"detail":"\xff\xfe"}'),
    # an escaped lone surrogate: valid JSON grammar, not Unicode
    "meas-surrogate": (topics.MEAS, _READING + b'"a\\ud800"}]}'),
    "event-surrogate": (topics.EVENT, _EVENT + b'"detail":"x\\ud800"}'),
    "ack-id-surrogate": (topics.ACK, _ACK + b'"id":"c-\\ud800"}'),
    "ack-reason-surrogate": (topics.ACK, _ACK + b'"id":"c-1","reason":"\\udfff"}'),
    "state-surrogate": (topics.STATE, _STATE + b'"reset_cause":"power_on","fw":"\\udc00"}'),
    "state-offline-surrogate": (topics.STATE, b'{"status":"offline","fw":"0.1\\udbff"}'),
    # nesting deeper than the parsers' recursion limits, under the size limit
    "meas-deep": (topics.MEAS, _READING + _deep(2000) + b"}]}"),
    "event-deep": (topics.EVENT, _EVENT + b'"detail":' + _deep(3000) + b"}"),
    "ack-deep": (topics.ACK, _ACK + b'"id":"c-1","checks":' + _deep(1500) + b"}"),
    "state-deep": (topics.STATE, _deep(4000)),
    "event-deep-objects": (topics.EVENT, b'{"a":' * 1300 + b"1" + b"}" * 1300),
    # numbers no parser should take
    "meas-huge-int": (topics.MEAS, _READING + b'"a"}],"x":' + b"9" * 5000 + b"}"),
    "event-huge-float": (topics.EVENT, _EVENT + b'"detail":1e999}'),
    "meas-nan": (topics.MEAS, b'{"boot":1,"seq":1,"readings":[{"ts":%d,"q":"pm25","v":NaN}]}' % T0),
    "ack-big-int": (topics.ACK, _ACK + b'"id":"c-1","x":%s}' % (b"9" * 40)),
    # not JSON at all
    "meas-bom": (topics.MEAS, b"\xef\xbb\xbf" + meas(1)),
    "event-empty": (topics.EVENT, b""),
    "state-binary": (topics.STATE, bytes(range(256))),
}


@pytest.mark.parametrize("name", sorted(KILLERS))
def test_one_hostile_message_is_dead_lettered_and_the_rest_flows(name: str) -> None:
    channel, payload = KILLERS[name]
    s = sort_messages([(meas_topic("p1"), meas(1)), (_topic(channel), payload)])
    s2 = sort_messages([(meas_topic("p1"), meas(2))])
    assert [b.seq for b in s.batches] == [1] and [b.seq for b in s2.batches] == [2]
    assert not (s.events or s.acks or s.states)
    (dead,) = s.dead
    assert dead.topic == _topic(channel) and dead.payload == payload
    assert dead.field and dead.reason


def test_lone_surrogate_has_its_own_reason() -> None:
    (dead,) = sort_messages([(_topic(topics.EVENT), KILLERS["event-surrogate"][1])]).dead
    assert "surrogate" in dead.reason


def test_valid_surrogate_pairs_are_still_text() -> None:
    """An emoji escaped as a UTF-16 pair is Unicode: taken, and stored as such."""
    payload = _EVENT + b'"detail":"lamp \\ud83d\\udca1 out"}'
    s = sort_messages([(_topic(topics.EVENT), payload)])
    assert not s.dead and s.events[0][2]["detail"] == "lamp \U0001f4a1 out"


def test_operator_reads_of_old_rows_with_surrogates_are_valid_utf8(tmp_path: Path) -> None:
    """Rows stored before this check (a lone surrogate inside stored JSON text) are read back as
    valid Unicode, so the endpoints that show them answer instead of failing to encode."""
    ops = OpsStore(tmp_path / "ops.db")
    event = {"boot": 1, "seq": 1, "ts": T0, "kind": "alarm", "code": "lampFailure"}
    ack = {"id": "c-1", "kind": "cmd", "ts": T0, "status": "failed"}
    ops.write(
        [],
        [("p1", "n1", {**event, "detail": "x\ud800"})],
        [("p1", "n1", {**ack, "reason": "\udfff"})],
        [DeadLetter("streetpole/v1/p1/n1/ack", "id\ud800", "bad \udc00", b"\xff")],
    )
    for rows in (ops.events(), ops.acks(), ops.dead_letters()):
        assert len(rows) == 1
        json.dumps(rows, ensure_ascii=False).encode()  # raises on a lone surrogate
    assert ops.events()[0]["detail"] == "x\ufffd"


@pytest.mark.parametrize("config_id", ["abc", "9" * 30, "-1"])
def test_a_bad_config_ack_does_not_drop_the_alarms_of_its_batch(
    tmp_path: Path, config_id: str
) -> None:
    """The fleet view is updated once per ingest batch: a config ack whose id is no version
    (valid for the schema, which only says "an id") must not lose another node's alarm."""
    from controller import fleet
    from controller.ingest.decode import Sorted
    from controller.registry.db import Registry
    from controller.registry.models import Alarm, Node, Owner, Pole

    reg = Registry(f"sqlite:///{tmp_path / 'registry.db'}")
    try:
        with reg.session() as db:
            o = Owner(slug="city", name="City")
            db.add(o)
            db.flush()
            for pid in ("P000", "P001"):
                db.add(Pole(id=pid, lat=51.88, lon=4.53, owner_id=o.id))
                db.add(Node(pole_id=pid, node="n1", mqtt_username=f"{pid}/n1", update_key="00"))
        ack = {"id": config_id, "kind": "config", "ts": T0, "status": "applied"}
        event = {"boot": 1, "seq": 1, "ts": T0, "kind": "alarm", "code": "lampFailure"}
        s = Sorted(acks=[("P000", "n1", ack)], events=[("P001", "n1", {**event, "active": True})])
        with reg.session() as db:
            fleet.apply_ingest(db, s, fleet.Heard())
        with reg.session() as db:
            alarms = [(a.pole_id, a.code) for a in db.query(Alarm)]
        assert alarms == [("P001", "lampFailure")]
    finally:
        reg.close()


def test_duplicate_keys_mean_the_same_to_every_parser_on_the_way() -> None:
    """JSON leaves repeated keys to the parser; msgspec (batches), orjson and json (the codec)
    all take the last, so a node cannot make the fast path and the codec see two messages."""
    from controller.ingest import fastmeas
    from protocols import codec

    payload = b'{"boot":1,"seq":1,"seq":2,"readings":[{"ts":%d,"q":"pm25","v":1,"v":3}]}' % T0
    fast = fastmeas.decode_meas(payload)
    slow = codec.decode(topics.MEAS, payload)
    assert (fast["seq"], fast["readings"][0]["v"]) == (slow["seq"], slow["readings"][0]["v"])
    assert (fast["seq"], fast["readings"][0]["v"]) == (2, 3)
    event = _EVENT + b'"code":"sensorFault","detail":"x"}'
    assert codec.decode(topics.EVENT, event)["code"] == "sensorFault"
