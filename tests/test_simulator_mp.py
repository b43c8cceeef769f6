"""A street pole as a real MicroPython process (simulator/mpnodes.py): from the ROMFS image, in
an ESP32's 96 KiB heap, against a real mosquitto; it takes its retained config, reports, and
follows an override, as the in-process poles do."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from controller.broker import Broker
from fieldtools.unixport import ESP32_HEAP_KIB, interpreter_info
from protocols import topics
from simulator.mpnodes import MicroPythonPole, build_node_rom
from tests.harness.api import wait_for

# As the controller compiles it for `make run`'s street (controller/fleet.compile_config): with
# location, calendar, limits, presence and neighbours. Persisting it by serialising it again ran
# a 96 KiB node out of heap there, and a subscription per neighbour did too.
CONFIG = {
    "version": 1,
    "report_period_s": 10,
    "location": {"lat": 51.9, "lon": 4.5},
    "tz": "UTC0",
    "dimming": {"programs": {"low": {"steps": [{"at": "00:00", "level": 0.3}]}},
                "default_program": "low", "calendar": [], "min_level": 0.0, "max_level": 1.0,
                "presence": {"level": 1.0, "hold_s": 60, "ramp_up_s": 1, "ramp_down_s": 10,
                             "neighbour_level": 0.7}},
    "neighbours": [{"pole": f"NB-{i}", "node": "n1"} for i in range(4)],
}  # fmt: skip


@pytest.mark.slow
def test_micropython_pole_in_the_street(broker: Broker, topic_prefix: str, tmp_path: Path) -> None:
    pole = topic_prefix
    got: list[tuple[str, dict[str, Any]]] = []
    obs = paho.Client(paho.CallbackAPIVersion.VERSION2)

    def on_message(_c: paho.Client, _u: object, m: paho.MQTTMessage) -> None:
        got.append((m.topic.rsplit("/", 1)[1], json.loads(m.payload)))

    obs.on_message = on_message
    obs.connect(broker.host, broker.port)
    obs.subscribe(f"{topics.PREFIX}/{pole}/#", qos=1)
    obs.loop_start()
    t = topics.Topic(pole, "n1", topics.CONFIG)
    obs.publish(str(t), json.dumps(CONFIG), qos=1, retain=True).wait_for_publish()
    local = {"pole": pole, "node": "n1", "wifi": {"ssid": "sim"},
             "broker": f"mqtt://{broker.host}:{broker.port}", "location": {"lat": 51.9, "lon": 4.5},
             "sensors": ["pir"], "update_key": "00" * 16}  # fmt: skip
    image = build_node_rom(tmp_path / "build")
    mp = MicroPythonPole(local, tmp_path / "flash", image, speed=20, start=time.time())
    mp.start()
    try:
        wait_for(
            lambda: [m for ch, m in got if ch == "ack" and m["id"] == "1"], 30, "config applied"
        )
        wait_for(lambda: len([m for ch, m in got if ch == "meas"]) >= 2, 30, "two batches")
        wait_for(
            lambda: [m for c, m in got if c == "state" and m.get("level") == 0.3],
            30,
            "program level",
        )
        cmd = {"id": "ov-1", "ts": int(time.time()), "cmd": "override", "level": 0.9}
        obs.publish(str(t.sibling(topics.CMD)), json.dumps(cmd), qos=1)
        wait_for(
            lambda: [m for c, m in got if c == "state" and m.get("level") == 0.9], 30, "override"
        )
        assert mp.running and mp.booted, mp.output
        assert mp.heap_peak is not None and mp.heap_peak < ESP32_HEAP_KIB * 1024
        # a reboot command: the node ends its run, and the pole starts it again on its flash
        cmd = {"id": "rb-1", "ts": int(time.time()), "cmd": "reboot"}
        obs.publish(str(t.sibling(topics.CMD)), json.dumps(cmd), qos=1)
        births = wait_for(
            lambda: [m for c, m in got if c == "state" and m.get("boot") == 2], 30, "boot 2"
        )
        assert births[0]["status"] == "online" and births[0]["config_version"] == 1, births[0]
        assert mp.boots == 2 and mp.running
    finally:
        mp.stop()
        obs.loop_stop()
        obs.disconnect()
    assert not [x for x in mp.output if "Error" in x], mp.output
    seqs = [m["seq"] for ch, m in got if ch == "meas" and m["boot"] == 1]
    # every batch, in order; with no controller here to confirm them, the node sends the
    # unconfirmed ones again after its reboot (protocols/README.md, "stored")
    first = list(dict.fromkeys(seqs))
    assert first == list(range(len(first))), seqs


@pytest.mark.slow
def test_street_with_micropython_poles(broker: Broker, tmp_path: Path) -> None:
    """The street runs its last pole as a MicroPython process beside the in-process ones: both
    kinds report to the same broker, and the run report carries the MicroPython pole's heap."""
    import asyncio

    from simulator.layout import grid
    from simulator.scenario import Fault
    from simulator.street import Street
    from simulator.world import Event, World

    lay = grid(3, prefix=f"MP{broker.port}-")
    seen: set[str] = set()
    obs = paho.Client(paho.CallbackAPIVersion.VERSION2)
    obs.on_message = lambda _c, _u, m: seen.add(m.topic.split("/")[2])
    obs.connect(broker.host, broker.port)
    obs.subscribe(f"{topics.PREFIX}/+/n1/meas", qos=1)
    obs.loop_start()
    world = World(lay, seed=1, start=time.time())
    street = Street(lay, world, broker.url, speed=20, sensors=("pir", "climate"), micropython=1,
                    report_period_s=10, flash_dir=tmp_path / "flash")  # fmt: skip
    try:
        asyncio.run(street.run(sim_seconds=240))
        wait_for(lambda: seen >= {p.id for p in lay.poles}, 20, "batches from every pole")
    finally:
        obs.loop_stop()
        obs.disconnect()
    t = street.totals()
    assert t["poles"] == 3 and len(street.poles) == 2
    # the world's walkers and faults address every pole; the MicroPython one takes neither
    # (a walker reaching it stopped `make run`'s street with an IndexError)
    before = [vp.stats.passes for vp in street.poles]
    for kind in ("enter", "motion", "reach"):
        street._apply(Event(world.t, kind, 2, 0))
    street._inject(Fault(at_s=0, pole=2, kind="sensor", sensor="pir", mode="dead"), True)
    assert [vp.stats.passes for vp in street.poles] == before
    assert not [x for x in street.fault_log if "MP" in x[1]], street.fault_log
    (mp,) = t["micropython_poles"]
    assert mp["pole"] == lay.poles[-1].id and mp["booted"] and not mp["errors"], mp
    # in the budget it runs with: an ESP32's, in words on the 64-bit port (simulator/mpnodes.py)
    budget = ESP32_HEAP_KIB * 1024 * interpreter_info().word_bytes // 4
    assert mp["heap_peak"] is not None and mp["heap_peak"] < budget
