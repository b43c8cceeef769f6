"""Shared pieces of the ingest tests: message makers and a QoS 1 publisher."""

from __future__ import annotations

import time

import paho.mqtt.client as paho

from controller.broker import Broker
from protocols import codec, topics

T0 = (int(time.time()) // 86400 - 1) * 86400  # yesterday 00:00 UTC
QUANTITIES = (
    "pm25",
    "pm10",
    "temperature",
    "relativeHumidity",
    "LAeq",
    "LAmax",
    "LAmin",
    "presenceCount",
    "illuminanceLevel",
    "energyConsumed",
)


def meas(seq: int, boot: int = 1, ts: int | None = None) -> bytes:
    """A realistic batch: ten readings of one reporting period (by default ``seq`` minutes
    after T0)."""
    ts = T0 + 60 * seq if ts is None else ts
    return codec.encode(
        topics.MEAS,
        {
            "boot": boot,
            "seq": seq,
            "readings": [
                {"ts": ts, "q": q, "v": 0.1 * (seq % 7), "dur": 60, "src": "air"}
                for q in QUANTITIES
            ],
        },
    )


def publish_all(broker: Broker, messages: list[tuple[str, bytes]], client_id: str = "") -> None:
    """Publish with QoS 1 and wait until the broker acknowledged every message."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id)
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        infos = [client.publish(t, p, qos=1) for t, p in messages]
        for info in infos:
            info.wait_for_publish(60)
            assert info.is_published()
    finally:
        client.loop_stop()
        client.disconnect()


def meas_topic(pole: str, node: str = "n1") -> str:
    return str(topics.Topic(pole, node, topics.MEAS))
