"""The protocol across interpreters through a real broker: MicroPython encodes, CPython decodes,
and the other way round."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import paho.mqtt.client as paho

from controller.broker import Broker
from protocols import codec, topics
from tests.harness.micropython import run_micropython
from tests.harness.paths import ROOT

NODE_SCRIPT = ROOT / "tests" / "mp" / "roundtrip_node.py"

CONFIG = {
    "version": 3,
    "report_period_s": 60,
    "dimming": {
        "programs": {
            "night": {"steps": [{"at": "sunset", "level": 1}, {"at": "sunrise", "level": 0}]}
        },
        "default_program": "night",
    },
}


def test_micropython_to_cpython_and_back_through_mosquitto(
    broker: Broker, topic_prefix: str, node_rom: Path
) -> None:
    pole, node = topic_prefix, "n1"
    got: list[tuple[str, bytes]] = []
    arrived = threading.Event()

    peer = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="controller-peer")

    def on_message(_c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        got.append((msg.topic, msg.payload))
        arrived.set()

    peer.on_message = on_message
    peer.connect(broker.host, broker.port)
    peer.subscribe(topics.subscription(topics.MEAS, pole=pole), qos=1)
    peer.loop_start()
    try:
        config_topic = str(topics.Topic(pole, node, topics.CONFIG))
        peer.publish(config_topic, codec.encode(topics.CONFIG, CONFIG), qos=1, retain=True)
        proc = run_micropython(
            NODE_SCRIPT, broker.host, str(broker.port), pole, node, rom=node_rom, timeout=60
        )
        assert arrived.wait(10), "no measurement batch reached the CPython side"
    finally:
        peer.loop_stop()
        peer.disconnect()

    # MicroPython -> CPython: the batch decodes to exactly what the node encoded
    topic, msg = codec.parse(got[0][0], got[0][1])
    assert (topic.pole, topic.node, topic.channel) == (pole, node, topics.MEAS)
    assert msg["seq"] == 7
    assert msg["readings"][1] == {
        "ts": 1795582800,
        "q": "LAeq",
        "v": 54.25,
        "dur": 60,
        "src": "noise",
        "flags": ["indicative"],
    }
    # CPython -> MicroPython: the node decoded the retained config to the same message
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["acked"] is True
    assert report["received"] == [["config", CONFIG, True]]
