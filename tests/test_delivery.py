"""End-to-end delivery: a broker that dies (SIGKILL) under load loses nothing.

mosquitto acknowledges a QoS 1 publish (PUBACK) before it has written the message to its
persistence file (``autosave_interval``), so what it held when it was killed is gone: the node
had already freed those batches on the PUBACK. Here the real firmware (``spnode.app.Node``, in
the simulator's street) sends through a real mosquitto with persistence to the real ingest
worker and SQLite store, the broker is killed several times while batches flow, and every batch
any node made must end up stored, or still be in its node's store waiting for the controller's
confirmation (``stored`` channel, protocols/README.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from controller.broker import Broker, BrokerConfig, free_port
from controller.ingest.confirm import ranges
from controller.ingest.worker import IngestWorker
from controller.metrics import Metrics
from controller.settings import Settings
from controller.store.ops import OpsStore
from controller.store.sqlite import SqliteStore
from protocols import codec
from simulator.layout import grid
from simulator.street import Street
from simulator.world import World
from tests.harness.wait import wait_for
from tests.ingest_helpers import T0, FailingStore, meas, meas_topic, publish_all

POLES = 20
SPEED = 20  # the nodes' clocks run 20x: a 10 s report period is a batch per pole every 0.5 s
PERIOD_S = 10
KILLS = 3


class Ingest:
    """The ingest worker with its own stores, in a thread with its own event loop."""

    def __init__(self, settings: Settings, store: SqliteStore | None = None) -> None:
        self.store = store or SqliteStore(settings.database_path)
        self.ops = OpsStore(settings.data_dir / "ops.db", settings.dead_letter_max)
        self.worker = IngestWorker(settings, self.store, self.ops, Metrics())
        self.loop = asyncio.new_event_loop()
        self.task: asyncio.Task[None] | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.task = self.loop.create_task(self.worker.run())
        with contextlib.suppress(asyncio.CancelledError):
            self.loop.run_until_complete(self.task)

    def stop(self) -> None:
        if self.task is not None:
            self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(10)


class Running:
    """A street in a thread of its own (its own asyncio loop)."""

    def __init__(self, street: Street) -> None:
        self.street = street
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        wait_for(lambda: street.started_real > 0, 30, "street started")

    def _run(self) -> None:
        try:
            asyncio.run(self.street.run())
        except BaseException as e:  # reported by stop
            self.error = e

    def stop(self) -> None:
        self.street.stop()
        self.thread.join(30)
        if self.error is not None:
            raise self.error


def stored_batches(db: Path) -> set[tuple[str, int, int]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return set(conn.execute("SELECT pole, boot, seq FROM batches").fetchall())
    finally:
        conn.close()


def made(street: Street) -> set[tuple[str, int, int]]:
    return {(vp.pole.id, b, s) for vp in street.poles for b, s, _ in list(vp.record or ())}


def buffered(street: Street) -> int:
    return sum(len(vp.node.buffer) for vp in street.poles)


@pytest.mark.slow
def test_broker_killed_under_load_loses_nothing_end_to_end(tmp_path: Path) -> None:
    broker = Broker(
        tmp_path / "broker", BrokerConfig(port=free_port(), persistence_dir=tmp_path / "broker")
    )
    broker.start()
    # a flush every 200 ms: the controller holds a received batch a little longer before it
    # stores and acknowledges it, as it does under a heavier load than this test can make
    settings = Settings(mqtt_url=broker.url, data_dir=tmp_path, ingest_flush_ms=200)  # type: ignore[arg-type]
    ingest = Ingest(settings)
    lay = grid(POLES, prefix="KD-")
    world = World(lay, start=time.time() - 86400, traffic=0)
    street = Street(
        lay, world, broker.url, speed=SPEED, record=True, report_period_s=PERIOD_S,
        sensors=("pir",), connect_spread_s=0.5,
    )  # fmt: skip
    run = Running(street)
    stats: dict[str, Any] = {}
    try:
        wait_for(lambda: ingest.worker.connected.is_set(), 10, "ingest connected")
        for k in range(KILLS + 1):
            want = len(made(street)) + 2 * POLES
            wait_for(lambda w=want: len(made(street)) >= w, 30, "batches flowing")
            if k == KILLS:
                break
            connects = ingest.worker.stats.connects
            broker.kill()
            broker.start()
            wait_for(lambda c=connects: ingest.worker.stats.connects > c, 30, "reconnect")
        for vp in street.poles:  # no more reports: what was made must now reach the store
            vp.node.period_s = 86400
        wait_for(lambda: buffered(street) == 0, 60, "every node's store empty")
        everything = made(street)
        with contextlib.suppress(AssertionError):  # the verdict is the assertion below
            wait_for(lambda: everything <= stored_batches(settings.database_path), 10, "store")
        stats = street.totals()
    finally:
        run.stop()
        ingest.stop()
        broker.stop()
    missing = everything - stored_batches(settings.database_path)
    w = ingest.worker.stats
    print(
        f"{len(everything)} batches made, {len(missing)} lost; {stats['meas_publishes']} meas "
        f"publishes; {w.confirmations} confirmations, {w.confirmation_bytes} bytes"
    )
    assert not missing, f"{len(missing)} of {len(everything)} batches lost: {sorted(missing)}"
    assert stats["dropped"] == 0
    assert ingest.worker.stats.confirmations >= len(everything) // 2  # mostly one per batch


def test_ranges_of_consecutive_seqs() -> None:
    ids = [(1, 5), (1, 3), (1, 4), (2, 0), (1, 9), (1, 4), (2, 1), (1, 7)]
    assert ranges(ids) == [[1, 3, 5], [1, 7, 7], [1, 9, 9], [2, 0, 1]]
    assert ranges([]) == []


class Confirmations:
    """A subscriber to every node's ``stored`` topic that notes, as each confirmation
    arrives, whether the batches it names are in the store at that moment."""

    def __init__(self, broker: Broker, db: Path) -> None:
        self.db = db
        self.got: list[tuple[str, dict[str, Any], bool]] = []
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.subscribe("streetpole/v1/+/+/stored", 0)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, m: Any) -> None:
        msg = codec.decode("stored", m.payload)
        pole = m.topic.split("/")[2]
        named = {(pole, b, s) for b, f, la in msg["batches"] for s in range(f, la + 1)}
        self.got.append((m.topic, msg, named <= stored_batches(self.db)))

    def named(self) -> set[tuple[str, int, int]]:
        return {
            (t.split("/")[2], b, s)
            for t, msg, _ in self.got
            for b, f, la in msg["batches"]
            for s in range(f, la + 1)
        }

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_the_controller_confirms_what_it_stored_after_the_commit(
    broker: Broker, tmp_path: Path
) -> None:
    settings = Settings(mqtt_url=broker.url, data_dir=tmp_path)  # type: ignore[arg-type]
    ingest = Ingest(settings)
    conf = Confirmations(broker, settings.database_path)
    bad = b'{"boot":1,"seq":9,"readings":[{"ts":%d,"q":"pm25","v":"x"}]}' % T0
    messages = [(meas_topic("p1"), meas(i)) for i in range(5)]
    messages += [(meas_topic("p1"), meas(0, boot=2)), (meas_topic("p2"), meas(7))]
    messages += [(meas_topic("p3"), bad), (meas_topic("p4"), b"\xff not json")]
    messages += [(meas_topic("p1"), meas(2))]  # a resend: stored once, confirmed again
    want = {("p1", 1, s) for s in range(5)} | {("p1", 2, 0), ("p2", 1, 7), ("p3", 1, 9)}
    try:
        wait_for(lambda: ingest.worker.connected.is_set(), 10, "ingest connected")
        publish_all(broker, messages)
        wait_for(lambda: conf.named() >= want, 10, "confirmations")
        wait_for(lambda: ingest.worker.stats.messages >= len(messages), 10, "ingest")
    finally:
        ingest.stop()
        conf.close()
    assert conf.named() == want  # the undecodable one without boot and seq is not named
    # each one came after the commit of what it names (p3's is a dead letter, not a batch)
    assert all(ok for topic, _, ok in conf.got if "/p3/" not in topic)
    per_node: dict[str, int] = {}
    for topic, _, _ in conf.got:
        per_node[topic] = per_node.get(topic, 0) + 1
    assert max(per_node.values()) <= ingest.worker.stats.batches  # one per node per commit
    assert ingest.worker.stats.confirmations == len(conf.got)


def test_a_failed_write_confirms_nothing(broker: Broker, tmp_path: Path) -> None:
    """The write fails: no confirmation (the node keeps the batch), the broker sends the
    message again, and the confirmation follows the write that worked."""
    settings = Settings(mqtt_url=broker.url, data_dir=tmp_path)  # type: ignore[arg-type]
    ingest = Ingest(settings, FailingStore(settings.database_path))
    conf = Confirmations(broker, settings.database_path)
    try:
        wait_for(lambda: ingest.worker.connected.is_set(), 10, "ingest connected")
        publish_all(broker, [(meas_topic("p1"), meas(3))])
        wait_for(lambda: bool(conf.got), 20, "the confirmation")
    finally:
        ingest.stop()
        conf.close()
    assert ingest.worker.stats.connects >= 2  # the failed write ended the connection
    assert [(msg, ok) for _, msg, ok in conf.got] == [({"batches": [[1, 3, 3]]}, True)]
