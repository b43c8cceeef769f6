"""Shared pieces of the ingest tests: message makers and a QoS 1 publisher."""

from __future__ import annotations

import time
from pathlib import Path

import paho.mqtt.client as paho

from controller.broker import Broker
from controller.registry.db import Registry
from controller.registry.measures import BY_TYPE
from controller.registry.models import Module, Owner, Pole
from controller.store.base import Batch, TimeSeriesStore, WriteResult
from controller.store.sqlite import SqliteStore
from protocols import codec, topics
from protocols.schema_defs import MAX_READINGS

# 00:00 UTC eight days ago: ``meas(seq)`` for up to 10,000 minutes stays in the past (ingest
# refuses readings ahead of its clock) and inside raw retention
T0 = (int(time.time()) // 86400 - 8) * 86400
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


# the module of each quantity above: its type and the src its readings come with
MODULES = {"air": "air", "noise": "noise", "motion": "motion", "lighting": "lamp"}


def src_of(q: str) -> str:
    return next(src for mtype, src in MODULES.items() if q in BY_TYPE[mtype])


def meas(seq: int, boot: int = 1, ts: int | None = None) -> bytes:
    """A realistic batch: ten readings of one reporting period (by default ``seq`` minutes
    after T0), each with the src of the module that measures it (``register``)."""
    ts = T0 + 60 * seq if ts is None else ts
    return codec.encode(
        topics.MEAS,
        {
            "boot": boot,
            "seq": seq,
            "readings": [
                {"ts": ts, "q": q, "v": 0.1 * (seq % 7), "dur": 60, "src": src_of(q)}
                for q in QUANTITIES
            ],
        },
    )


def register(registry_url: str, poles: list[str], node: str = "n1") -> None:
    """Poles with node ``node`` and the modules ``meas`` reports for, straight into the
    registry (ingest takes a reading only from a module that measures it)."""
    reg = Registry(registry_url)
    try:
        with reg.session() as db:
            owner = Owner(slug="city", name="City")
            db.add(owner)
            db.flush()
            for pole in poles:
                db.add(Pole(id=pole, lat=51.88, lon=4.53, owner_id=owner.id))
                db.add_all(
                    Module(pole_id=pole, type=t, owner_id=owner.id, node=node, src=src)
                    for t, src in MODULES.items()
                )
    finally:
        reg.close()


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
                        {"ts": end - 60 * m, "q": q, "v": 0.1, "dur": 60, "src": src_of(q)}
                        for m in minutes[j : j + step]
                        for q in QUANTITIES
                    ],
                )
                for pole in poles[i : i + 100]
                for j in range(0, len(minutes), step)
            ]
        )


def publish_all(
    broker: Broker,
    messages: list[tuple[str, bytes]],
    client_id: str = "",
    login: tuple[str, str] | None = None,
) -> None:
    """Publish with QoS 1 (as ``login``'s username and password, if given) and wait until the
    broker acknowledged every message."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id)
    if login is not None:
        client.username_pw_set(*login)
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


class FailingStore(SqliteStore):
    """A store whose first write fails, like a disk error, then works."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.failures = 1

    def write(self, batches: list[Batch]) -> WriteResult:  # type: ignore[override]
        if self.failures:
            self.failures -= 1
            raise OSError("disk I/O error (injected)")
        return super().write(batches)
