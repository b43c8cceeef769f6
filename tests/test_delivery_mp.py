"""The node keeps its batches until the controller confirms them, on the MicroPython unix port:
the firmware from its ROMFS image in an ESP32's 96 KiB heap, its store on flash, a real
mosquitto and the real ingest worker.

While the controller is away the broker acknowledges the node's batches and the node keeps them
all; the broker then dies (SIGKILL: what it took after its last save is gone) and comes back,
and the controller with it; the node sends every unconfirmed batch again after its reconnect,
the controller stores and confirms them, and the node frees them.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from controller.broker import Broker, BrokerConfig, free_port
from controller.settings import Settings
from protocols import topics
from simulator.mpnodes import MicroPythonPole, build_node_rom
from spnode.buffer import SIZE_FLASH, Buffer
from tests.harness.wait import wait_for
from tests.test_delivery import Ingest, stored_batches
from tests.test_simulator_mp import CONFIG

POLE = "MP-DELIVERY"


def held(flash: Path, work: Path) -> int:
    """Batches in the node's flash store now (a copy of its journal, replayed)."""
    journal = flash / "data" / "meas.q"
    if not journal.exists():
        return 0
    copy = work / "meas.q"
    shutil.copyfile(journal, copy)
    buf = Buffer(SIZE_FLASH[0], SIZE_FLASH[1], str(copy))
    n: int = buf.restore()
    buf.close()
    return n


def made(mp: MicroPythonPole) -> int:
    """Batches the node has made (its last report of ``seq``)."""
    return max((int(x["seq"]) for x in mp.lines if "seq" in x), default=0)


@pytest.mark.slow
def test_node_keeps_unconfirmed_batches_through_a_broker_crash(tmp_path: Path) -> None:
    port = free_port()
    # persistence as in production: the controller's session (its subscriptions) and the
    # retained config survive the kill; what came in after the last save does not
    broker = Broker(tmp_path / "broker", BrokerConfig(port=port, persistence_dir=tmp_path / "b"))
    broker.start()
    settings = Settings(mqtt_url=broker.url, data_dir=tmp_path / "ctl")  # type: ignore[arg-type]
    settings.data_dir.mkdir()
    ingest = Ingest(settings)  # makes the controller's session, then goes away
    wait_for(lambda: ingest.worker.connected.is_set(), 10, "ingest connected")
    ingest.stop()
    cfg = paho.Client(paho.CallbackAPIVersion.VERSION2)
    cfg.connect(broker.host, port)
    cfg.loop_start()
    t = str(topics.Topic(POLE, "n1", topics.CONFIG))
    cfg.publish(t, json.dumps(CONFIG), qos=1, retain=True).wait_for_publish()
    cfg.loop_stop()
    cfg.disconnect()
    local = {"pole": POLE, "node": "n1", "wifi": {"ssid": "sim"},
             "broker": f"mqtt://{broker.host}:{port}", "location": {"lat": 51.9, "lon": 4.5},
             "sensors": ["pir"], "update_key": "00" * 16}  # fmt: skip
    image = build_node_rom(tmp_path / "build")
    flash = tmp_path / "flash"
    mp = MicroPythonPole(local, flash, image, speed=20, start=time.time())
    mp.start()
    ingest = None
    try:
        # no controller: the broker acknowledges every batch, the node keeps them all
        wait_for(lambda: made(mp) >= 6, 60, "six batches made")
        before = held(flash, tmp_path)
        assert before >= 5, (before, mp.output)
        broker.kill()
        broker.start()
        ingest = Ingest(settings)
        wait_for(lambda: ingest is not None and ingest.worker.connected.is_set(), 10, "ingest")
        want = made(mp)
        everything = {(POLE, 1, s) for s in range(want)}
        wait_for(lambda: everything <= stored_batches(settings.database_path), 60, "all stored")
        wait_for(lambda: held(flash, tmp_path) <= 1, 30, "confirmed batches freed")
        confirmations = ingest.worker.stats.confirmations
    finally:
        mp.stop()
        if ingest is not None:
            ingest.stop()
        broker.stop()
    assert not [x for x in mp.output if "Error" in x], mp.output
    assert mp.boots == 1 and confirmations >= 1
    print(f"held {before} unconfirmed through the crash; {want} batches all stored; heap peak "
          f"{mp.heap_peak} B")  # fmt: skip
