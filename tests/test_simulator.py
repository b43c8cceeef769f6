"""The simulator: a street of virtual poles (the real firmware, each with its own MQTT connection
and credentials) provisioned through the operator API of the in-process controller, against a
real mosquitto, driven by a deterministic world."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import multiprocessing
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from controller.broker import Broker
from simulator.layout import DATA, from_geojson, grid
from simulator.provision import Credentials, provision
from simulator.scenario import from_dict
from simulator.street import Street
from simulator.world import World
from tests.harness.api import running_api, wait_for

SPEED = 60


def last_night_start() -> float:
    """23:00 UTC yesterday: dark in Rotterdam in every season, and a recent timestamp."""
    d = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    return dt.datetime(d.year, d.month, d.day, 23, tzinfo=dt.UTC).timestamp()


def test_same_seed_same_world() -> None:
    lay = grid(10)
    start = last_night_start()

    def run(seed: int) -> list[Any]:
        w = World(lay, seed=seed, start=start, traffic=10)
        return w.advance_to(start + 2 * 3600)

    a, b, c = run(1), run(1), run(2)
    assert a == b and len(a) > 100
    assert a != c
    kinds = {e.kind for e in a}
    assert kinds == {"enter", "motion", "reach", "leave"}
    # people move pole to pole: one walker enters neighbouring poles one after the other
    w0 = next(e.walker for e in a if e.kind == "enter")
    seen = [e.pole for e in a if e.walker == w0 and e.kind == "enter"]
    assert len(seen) >= 2 and all(abs(x - y) == 1 for x, y in itertools.pairwise(seen))
    # faults drawn at random are repeatable too
    sc = {"seed": 3, "faults": [{"random": "sensor", "count": 4, "between_s": [0, 600]}]}
    ids = [p.id for p in lay.poles]
    assert from_dict(sc).resolve(ids) == from_dict(sc).resolve(ids)


def test_layouts_and_environment() -> None:
    lay = from_geojson(DATA / "rotterdam-zuid.geojson")
    assert 50 <= len(lay.poles) <= 80 and len({p.id for p in lay.poles}) == len(lay.poles)
    assert all(51.88 < p.lat < 51.90 and 4.49 < p.lon < 4.51 for p in lay.poles)
    assert len(grid(500).poles) == 500
    w = World(lay, seed=1, start=last_night_start())
    night, rush = w.env(0, w.start), w.env(0, w.start + 9 * 3600)  # 23:00 and 08:00 UTC
    assert night.noise_dba < rush.noise_dba and night.pm25 < rush.pm25
    assert w.dark(w.start) and not w.dark(w.start + 13 * 3600)


class Tap:
    def __init__(self, broker: Broker, *subs: str) -> None:
        self.got: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="tap")
        self.c.on_connect = lambda c, *_: [c.subscribe(s, qos=0) for s in subs]
        self.c.on_message = self._msg
        self.c.connect(broker.host, broker.port)
        self.c.loop_start()

    def _msg(self, _c: paho.Client, _u: object, m: paho.MQTTMessage) -> None:
        with self.lock:
            self.got.append((m.topic, json.loads(m.payload)))

    def messages(self, channel: str) -> list[tuple[str, dict[str, Any]]]:
        with self.lock:
            return [(t.split("/")[2], m) for t, m in self.got if t.endswith("/" + channel)]

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


FAULTS = {"faults": [{"at_s": 120, "kind": "offline", "pole": "S-0005", "duration_s": 180}]}


def street_process(
    broker_url: str, creds: dict[str, Credentials], start: float, out: Any, stop: Any
) -> None:
    """The street in a process of its own (as in production): sharing the GIL with the
    in-process controller starves both under load."""
    import asyncio

    lay = grid(10, prefix="S-")
    faults = from_dict(FAULTS).resolve([p.id for p in lay.poles])
    world = World(lay, seed=1, start=start, traffic=6)
    street = Street(lay, world, broker_url, creds, speed=SPEED, faults=faults, sensors=("pir",))

    async def main() -> None:
        run = asyncio.create_task(street.run())
        while not stop.is_set() and not run.done():
            await asyncio.sleep(0.1)
        street.stop()
        await run

    asyncio.run(main())
    out.put(street.totals())


@pytest.mark.slow
def test_a_street_of_virtual_poles(tmp_path: Path, broker: Broker) -> None:
    lay = grid(10, prefix="S-")
    ids = [p.id for p in lay.poles]
    tap = Tap(broker, "streetpole/v1/+/+/presence", "streetpole/v1/+/+/state")
    ctx = multiprocessing.get_context("spawn")
    stop, out = ctx.Event(), ctx.Queue()
    with running_api(tmp_path, mqtt_url=broker.url) as api:
        wait_for(lambda: api.state.dispatcher.connected.is_set(), what="dispatcher")
        creds = provision(api.client, api.tokens["admin"], lay)
        assert sorted(p["id"] for p in api.ok("admin", "GET", "/api/poles")) == ids
        assert {c.username for c in creds.values()} == {f"{p}/n1" for p in ids}
        groups = {g["name"]: sorted(g["poles"]) for g in api.ok("admin", "GET", "/api/groups")}
        assert groups == {
            f"Section {ids[0]}–{ids[4]}": ids[:5],
            f"Section {ids[5]}–{ids[9]}": ids[5:],
        }
        proc = ctx.Process(
            target=street_process, args=(broker.url, creds, last_night_start(), out, stop)
        )
        proc.start()
        try:
            nodes = lambda: api.ok("admin", "GET", "/api/nodes")  # noqa: E731
            wait_for(
                lambda: all(n["status"] == "online" or n["pole_id"] == "S-0005" for n in nodes()),
                30,
                "all nodes online",
            )
            wait_for(
                lambda: api.ok("admin", "GET", "/api/alarms?pole=S-0005&state=active"),
                20,
                "nodeOffline raised",
            )
            alarm = api.ok("admin", "GET", "/api/alarms?pole=S-0005")[0]
            assert alarm["code"] == "nodeOffline"
            wait_for(
                lambda: api.ok("admin", "GET", "/api/alarms?pole=S-0005&state=cleared"),
                30,
                "nodeOffline cleared",
            )
            # neighbour wake on the broker: a pole at the neighbour level (0.7, nothing else
            # gives that level), its neighbour having announced presence just before
            wait_for(
                lambda: any(m.get("level") == 0.7 for _, m in tap.messages("state")),
                20,
                "a neighbour woken",
            )
            wait_for(
                lambda: (
                    {(s.pole, s.q) for s in api.state.store.streams()}
                    >= {(p, "energyConsumed") for p in ids}
                ),
                20,
                "measurements of every pole stored",
            )
        finally:
            stop.set()
            t = out.get(timeout=60)
            proc.join(timeout=30)
            tap.close()
        assert proc.exitcode == 0
    woken = {p for p, m in tap.messages("state") if m.get("level") == 0.7}
    announced = {p for p, _ in tap.messages("presence")}
    assert woken
    for p in woken:  # each woken pole has a neighbour (30 m away) that saw someone
        i = ids.index(p)
        assert {ids[j] for j in (i - 1, i + 1) if 0 <= j < len(ids)} & announced
    assert len(announced) >= 5
    assert t["presence_events"] > 0 and t["neighbour_wakes"] > 0 and t["reaches_dark"] > 0
    assert 0 < t["energy_wh"] < t["baseline_wh"]  # presence dimming saves against always-on
    assert t["dropped"] == 0 and t["faults"] == 2
    print(t)


def test_the_demo_street_has_groups_and_provisioning_again_keeps_them(tmp_path: Path) -> None:
    """make run's street comes with two groups (group overrides, energy per group and
    campaigns need one); a second run does not add more."""
    lay = grid(3, prefix="G-")
    ids = [p.id for p in lay.poles]
    with running_api(tmp_path, ingest_enabled=False, dispatch_enabled=False) as api:
        for _ in range(2):
            provision(api.client, api.tokens["admin"], lay)
            groups = {g["name"]: g["poles"] for g in api.ok("admin", "GET", "/api/groups")}
            assert groups == {
                f"Section {ids[0]}–{ids[1]}": ids[:2],
                f"Section {ids[2]}–{ids[2]}": ids[2:],
            }
