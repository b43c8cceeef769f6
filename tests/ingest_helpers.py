"""Shared pieces of the ingest tests: message makers and a QoS 1 publisher."""

from __future__ import annotations

import time

import paho.mqtt.client as paho

from controller.broker import Broker
from controller.store.base import Batch, TimeSeriesStore
from protocols import codec, topics
from protocols.schema_defs import MAX_READINGS

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


def write_history(store: TimeSeriesStore, poles: list[str], end: int, rows: int) -> None:
    """``rows`` readings a minute apart before ``end`` for every stream of ``poles``, through the
    store's own write path, pole by pole (its cheapest order), a hundred poles a write."""
    step = MAX_READINGS // len(QUANTITIES)  # minutes in one message
    minutes = list(range(rows, 0, -1))
    for i in range(0, len(poles), 100):
        store.write(
            [
                Batch(
                    pole,
                    "n1",
                    0,
                    j,
                    [
                        {"ts": end - 60 * m, "q": q, "v": 0.1, "dur": 60, "src": "air"}
                        for m in minutes[j : j + step]
                        for q in QUANTITIES
                    ],
                )
                for pole in poles[i : i + 100]
                for j in range(0, len(minutes), step)
            ]
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
