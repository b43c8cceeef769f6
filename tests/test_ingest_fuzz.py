"""Whatever bytes a node publishes, ingest goes on (issue #18, item 1): random bytes and mutated
valid payloads on every topic a node may write, through the real broker into the whole
controller; after each lot a valid batch is stored within 2 s and every operator endpoint that
shows what the node sent answers without a 500."""

from __future__ import annotations

import json
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.broker import Broker, free_port
from controller.mqtt_auth import NODE_WRITE_CHANNELS
from controller.store.base import StreamKey
from tests.harness.api import Api, running_api, wait_for

VECTORS = Path(__file__).parent.parent / "protocols" / "vectors"
TEMPLATES = {
    ch: [
        json.dumps(v["payload"]).encode()
        for v in map(json.loads, (VECTORS / f"{ch}.jsonl").read_text().splitlines())
        if v["valid"] and "payload" in v
    ]
    for ch in NODE_WRITE_CHANNELS
}
# Values no parser on the way may choke on: invalid UTF-8 (a bare byte, an overlong encoding),
# escaped lone surrogates, nesting past recursion limits, numbers past every range, NaN.
HOSTILE = [
    b'"a\xff\xfeb"',
    b'"\xc0\xaf"',
    b'"\xed\xa0\x80"',
    b'"\\ud800"',
    b'"x\\udfff\\ud800"',
    b"1e999",
    b"-1e400",
    b"NaN",
    b"-Infinity",
    b"9" * 40,
    b"-" + b"9" * 25,
    b"[" * 1500 + b"]" * 1500,
    b'{"a":' * 700 + b"1" + b"}" * 700,
    b'"\\u0000"',
    b"null",
    b"[]",
    b"{}",
    b"4102444801",
    b'"' + b"x" * 300 + b'"',
]
MARK = "@@hostile@@"


@st.composite
def payloads(draw: st.DrawFn, channel: str) -> bytes:
    kind = draw(st.sampled_from(["bytes", "value", "value", "splice", "splice", "dupkey", "cut"]))
    if kind == "bytes":
        return draw(st.binary(max_size=400))
    template = draw(st.sampled_from(TEMPLATES[channel]))
    known = st.sampled_from(HOSTILE)
    hostile = draw(st.one_of(known, known, known, st.binary(min_size=1, max_size=8)))
    if kind == "value":  # one field (of the message, or of its first reading) made hostile
        msg = json.loads(template)
        target = msg["readings"][0] if channel == "meas" and draw(st.booleans()) else msg
        key = draw(st.sampled_from([*target, "x"]))
        target[key] = MARK
        return json.dumps(msg).encode().replace(json.dumps(MARK).encode(), hostile)
    if kind == "dupkey":
        key = draw(st.sampled_from(list(json.loads(template))))
        return b"{" + json.dumps(key).encode() + b":" + hostile + b"," + template[1:]
    at = draw(st.integers(0, len(template)))
    if kind == "cut":
        return template[:at]
    end = draw(st.integers(at, len(template)))
    return template[:at] + hostile + template[end:]


messages = st.sampled_from(NODE_WRITE_CHANNELS).flatmap(
    lambda ch: st.tuples(
        st.just(ch), payloads(ch), st.booleans(), st.sampled_from(["P000", "P999"])
    )
)

ENDPOINTS = [
    "/api/ingest/stats",
    "/api/ingest/dead-letters?limit=1000",
    "/api/ingest/nodes",
    "/api/ingest/events?limit=1000",
    "/api/ingest/events?kind=alarm",
    "/api/ingest/acks?limit=1000",
    "/api/alarms",
    "/api/nodes",
    "/api/poles/P000",
    "/api/dashboard/poles/P000/latest",
    "/opendata/v1/latest",
    "/sta/v1.1/Datastreams",
    "/sta/v1.1/Observations",
    "/readyz",
]


class Node:
    """One MQTT connection publishing with QoS 1 (as a node does), waiting for each PUBACK."""

    def __init__(self, broker: Broker) -> None:
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"fuzz-{free_port()}")
        self.c.connect(broker.host, broker.port)
        self.c.loop_start()

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.c.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)
        assert info.is_published()

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def _setup(api: Api) -> None:
    city = api.ok("admin", "POST", "/api/owners", json={"slug": "city", "name": "City"})
    api.ok(
        "admin",
        "POST",
        "/api/poles",
        json={"id": "P000", "lat": 51.88, "lon": 4.53, "owner_id": city["id"]},
    )
    for mtype, src in (
        ("air", "air"),
        ("noise", "noise"),
        ("motion", "motion"),
        ("lighting", "lamp"),
    ):
        body = {"type": mtype, "src": src, "node": "n1", "owner_id": city["id"]}
        api.ok("admin", "POST", "/api/poles/P000/modules", json=body)
    api.ok("admin", "POST", "/api/nodes", json={"pole": "P000", "node": "n1"})


@pytest.mark.slow
def test_no_payload_on_any_node_topic_stops_ingest_or_breaks_an_endpoint(
    tmp_path: Path, broker: Broker
) -> None:
    settings_ = {"mqtt_url": broker.url, "opendata_catalog_ttl_s": 0, "opendata_rate_limit": False}
    with running_api(tmp_path / "ctl", **settings_) as api:
        store = api.state.store
        wait_for(api.state.ingest.connected.is_set, what="ingest connected")
        _setup(api)
        node = Node(broker)
        marker = StreamKey("P000", "n1", "air", "temperature")
        base = int(time.time()) - 7200
        counter = iter(range(1, 1_000_000))

        @settings(
            max_examples=60,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(lot=st.lists(messages, min_size=1, max_size=6))
        def one_lot(lot: list[tuple[str, bytes, bool, str]]) -> None:
            for channel, payload, retain, pole in lot:
                node.publish(f"streetpole/v1/{pole}/n1/{channel}", payload, retain)
            n = next(counter)
            valid = {
                "boot": 4242,
                "seq": n,
                "readings": [{"ts": base + n, "q": "temperature", "v": 20.0, "src": "air"}],
            }
            node.publish("streetpole/v1/P000/n1/meas", json.dumps(valid).encode())
            sent = time.monotonic()
            wait_for(
                lambda: store.query(marker, base + n, base + n + 1),
                timeout=2.0,
                what=f"valid batch {n} stored within 2 s",
            )
            assert time.monotonic() - sent <= 2.0
            for path in ENDPOINTS:
                r = api.call("admin", "GET", path)
                assert r.status_code < 500, f"{path}: {r.status_code} {r.text[:300]}"
                json.dumps(r.json(), ensure_ascii=False).encode()  # valid Unicode throughout

        try:
            one_lot()
        finally:
            node.close()
        stats = api.state.ingest.stats
        assert stats.dead_letters > 0  # the lots did reach ingest
        assert stats.connects == 1, stats.last_error  # and it never had to start again
