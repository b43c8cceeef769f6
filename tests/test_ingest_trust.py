"""What a node says about time and about its own readings, against the real broker and the whole
controller (issue #18, items 5 and 6): a retained event is not replayed into an alarm, a clock
ahead is refused and raised, and a reading's module (owner, openness) is the one that measures
its quantity, whatever ``src`` the node gives it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from controller.broker import Broker, BrokerConfig, free_port
from controller.opendata.catalog import PUBLIC, build
from controller.registry.db import Registry
from controller.settings import Settings
from controller.store.base import Batch
from controller.store.sqlite import SqliteStore
from tests.harness.api import Api, running_api, wait_for

OPEN_DATA = {"opendata_catalog_ttl_s": 0, "opendata_rate_limit": False}


def publish(broker: Broker, topic: str, msg: dict[str, Any], retain: bool = False) -> None:
    """One QoS 1 message, returned once the broker has acknowledged it."""
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"node-{free_port()}")
    c.connect(broker.host, broker.port)
    c.loop_start()
    try:
        info = c.publish(topic, json.dumps(msg), qos=1, retain=retain)
        info.wait_for_publish(10)
        assert info.is_published()
    finally:
        c.loop_stop()
        c.disconnect()


def pole(api: Api, pid: str, modules: list[dict[str, Any]]) -> None:
    owners = {o["slug"]: o["id"] for o in api.ok("admin", "GET", "/api/owners")}
    if "city" not in owners:
        owners["city"] = api.ok("admin", "POST", "/api/owners", json={"slug": "city", "name": "C"})[
            "id"
        ]
    api.ok(
        "admin",
        "POST",
        "/api/poles",
        json={"id": pid, "lat": 51.88, "lon": 4.53, "owner_id": owners["city"]},
    )
    for m in modules:
        body = {"owner_id": owners["city"], "node": "n1", **m}
        api.ok("admin", "POST", f"/api/poles/{pid}/modules", json=body)


def dead_letters(api: Api) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = api.ok("admin", "GET", "/api/ingest/dead-letters")
    return rows


def open_alarms(api: Api, code: str) -> list[dict[str, Any]]:
    rows = api.ok("admin", "GET", "/api/alarms", params={"state": "open"})
    return [a for a in rows if a["code"] == code]


@pytest.fixture
def persistent_broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(
        tmp_path / "broker",
        BrokerConfig(port=free_port(), persistence_dir=tmp_path / "broker"),
    )
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.mark.slow
def test_a_retained_event_does_not_raise_a_cleared_alarm_again(
    tmp_path: Path, persistent_broker: Broker
) -> None:
    broker = persistent_broker
    with running_api(tmp_path / "ctl", mqtt_url=broker.url) as api:
        ingest = api.state.ingest
        wait_for(ingest.connected.is_set, what="ingest connected")
        pole(api, "P000", [{"type": "lighting", "src": "lamp"}])
        event = {
            "boot": 1,
            "seq": 1,
            "ts": int(time.time()),
            "kind": "alarm",
            "code": "lampFailure",
            "active": True,
        }
        publish(broker, "streetpole/v1/P000/n1/event", event, retain=True)
        (alarm,) = wait_for(lambda: open_alarms(api, "lampFailure"), what="the alarm")
        api.ok("admin", "POST", f"/api/alarms/{alarm['id']}/clear")
        assert not open_alarms(api, "lampFailure")
        seen = ingest.stats.messages
        broker.restart()  # the controller reconnects and subscribes again: the broker replays
        # the retained event (retain flag set), which ingest must not take as news
        wait_for(lambda: ingest.stats.connects >= 2, what="ingest reconnected")

        def replayed() -> bool:  # refused (a dead letter), or taken (the alarm is back)
            refused = any(d["field"] == "retain" for d in dead_letters(api))
            return refused or bool(open_alarms(api, "lampFailure"))

        wait_for(replayed, what="the replayed event")
        assert ingest.stats.messages > seen
        assert not open_alarms(api, "lampFailure")
        (dead,) = [d for d in dead_letters(api) if d["topic"].endswith("/event")]
        assert dead["field"] == "retain"


@pytest.mark.slow
def test_a_clock_ahead_is_refused_counted_raised_and_never_the_latest(
    tmp_path: Path, broker: Broker
) -> None:
    metrics_token = "metrics-reader-token"  # the test client is no loopback address
    settings = {**OPEN_DATA, "metrics_token": metrics_token}
    with running_api(tmp_path / "ctl", mqtt_url=broker.url, **settings) as api:
        ingest = api.state.ingest
        wait_for(ingest.connected.is_set, what="ingest connected")
        pole(api, "P000", [{"type": "air", "src": "air"}])
        now = int(time.time())
        topic = "streetpole/v1/P000/n1/meas"

        def batch(seq: int, ts: int, v: float) -> dict[str, Any]:
            return {"boot": 1, "seq": seq, "readings": [{"ts": ts, "q": "pm25", "v": v}]}

        for m in (batch(1, now - 60, 10.0), batch(2, 4070908800, 99.0), batch(3, now + 3600, 98)):
            m["readings"][0]["src"] = "air"
            publish(broker, topic, m)
        wait_for(lambda: ingest.stats.messages >= 3, what="three batches")
        latest = api.client.get("/opendata/v1/latest").json()["value"]
        assert [(v["pole"], v["quantity"], v["result"]) for v in latest] == [("P000", "pm25", 10.0)]
        dead = [d for d in dead_letters(api) if d["topic"] == topic]
        assert len(dead) == 2 and all(d["field"] == "readings[0].ts" for d in dead)
        assert all("clock ahead" in d["reason"] for d in dead)
        assert ingest.stats.clock_ahead == {"P000/n1": 2}
        (alarm,) = wait_for(lambda: open_alarms(api, "clockAhead"), what="clockAhead alarm")
        assert alarm["node"] == "n1" and alarm["count"] == 2
        auth = {"Authorization": f"Bearer {metrics_token}"}
        metrics = api.client.get("/metrics", headers=auth).text
        assert "streetpole_ingest_clock_ahead_total 2.0" in metrics


@pytest.mark.slow
def test_a_relabelled_reading_is_refused_and_never_published(
    tmp_path: Path, broker: Broker
) -> None:
    """The attack: the pole's noise module is restricted, its air module open; the node files
    LAeq under the air module's src. It must not come out of open data, and is dead-lettered."""
    with running_api(tmp_path / "ctl", mqtt_url=broker.url, **OPEN_DATA) as api:
        ingest = api.state.ingest
        wait_for(ingest.connected.is_set, what="ingest connected")
        pole(
            api,
            "P000",
            [
                {"type": "air", "src": "air"},
                {"type": "noise", "src": "noise", "openness": "restricted"},
            ],
        )
        ts = int(time.time()) - 60
        readings = [
            {"ts": ts, "q": "pm25", "v": 12.0, "src": "air"},
            {"ts": ts, "q": "LAeq", "v": 61.0, "src": "noise"},
            {"ts": ts, "q": "LAeq", "v": 61.0, "src": "air"},  # forged
            {"ts": ts, "q": "LAmax", "v": 70.0, "src": "cam"},  # no such module
        ]
        publish(broker, "streetpole/v1/P000/n1/meas", {"boot": 1, "seq": 1, "readings": readings})
        wait_for(lambda: ingest.stats.messages >= 1, what="the batch")
        public = api.client.get("/opendata/v1/latest").json()["value"]
        assert [(v["quantity"], v["result"]) for v in public] == [("pm25", 12.0)]
        things = api.client.get("/sta/v1.1/Datastreams").json()["value"]
        assert [d["properties"]["quantity"] for d in things] == ["pm25"]
        (dead,) = dead_letters(api)
        assert dead["field"] == "readings[2].src"
        assert "2 of 4 readings refused" in dead["reason"] and "LAeq" in dead["reason"]
        # stored: the two readings their modules measure, nothing filed under the air module
        keys = {(k.src, k.q) for k in api.state.store.stream_index()}
        assert keys == {("air", "pm25"), ("noise", "LAeq")}


@pytest.mark.slow
def test_a_module_registered_after_the_index_was_read_counts_at_once(
    tmp_path: Path, broker: Broker
) -> None:
    with running_api(tmp_path / "ctl", mqtt_url=broker.url, ingest_modules_refresh_s=3600) as api:
        ingest = api.state.ingest
        wait_for(ingest.connected.is_set, what="ingest connected")
        msg = {"boot": 1, "seq": 1, "readings": [{"ts": int(time.time()), "q": "pm25", "v": 3.0}]}
        msg["readings"][0]["src"] = "air"
        publish(broker, "streetpole/v1/P000/n1/meas", msg)  # before the module exists: refused
        wait_for(lambda: ingest.stats.messages == 1, what="the first batch")
        assert ingest.modules.loads == 1
        ingest.modules.MISS_RECHECK_S = 0.0  # (a node is read again at most this often)
        assert [d["reason"] for d in dead_letters(api)] == [
            "1 of 1 readings refused, the first (pm25): the node has no module in the registry"
        ]
        pole(api, "P000", [{"type": "air", "src": "air"}])
        publish(broker, "streetpole/v1/P000/n1/meas", {**msg, "seq": 2})
        wait_for(lambda: ingest.stats.stored_points == 1, what="stored")
        assert ingest.modules.loads == 1  # the node alone was read again
        assert len(dead_letters(api)) == 1


def test_open_data_takes_a_reading_only_through_the_module_that_measures_it(
    tmp_path: Path,
) -> None:
    """Readings already stored under a module that does not measure them (before ingest
    checked) are not published through it either."""
    reg = Registry(f"sqlite:///{tmp_path / 'registry.db'}")
    store = SqliteStore(tmp_path / "streetpole.db")
    try:
        from controller.registry.models import Module, Owner, Pole

        with reg.session() as db:
            o = Owner(slug="city", name="City")
            db.add(o)
            db.flush()
            db.add(Pole(id="P000", lat=51.88, lon=4.53, owner_id=o.id))
            db.add(Module(pole_id="P000", type="air", owner_id=o.id, node="n1", src="air"))
            db.add(
                Module(
                    pole_id="P000",
                    type="noise",
                    owner_id=o.id,
                    node="n1",
                    src="noise",
                    openness="restricted",
                )
            )
        ts = int(time.time()) - 60
        store.write(
            [
                Batch(
                    "P000",
                    "n1",
                    1,
                    1,
                    [
                        {"ts": ts, "q": "pm25", "v": 1.0, "src": "air"},
                        {"ts": ts, "q": "LAeq", "v": 60.0, "src": "air"},
                    ],
                )
            ]
        )
        cat = build(reg, store, Settings(_env_file=None), PUBLIC)  # type: ignore[call-arg]
        assert sorted(d.q for d in cat.datastreams.values()) == ["pm25"]
    finally:
        store.close()
        reg.close()


def test_a_module_may_declare_what_it_measures(tmp_path: Path) -> None:
    """``attributes.quantities`` decides over the type (a market party's NO2 cell under type
    air measures only NO2; a counter of type other counts); the API refuses unknown names."""
    from controller.ingest.modules import ModuleIndex

    with running_api(tmp_path / "ctl", ingest_enabled=False, dispatch_enabled=False) as api:
        pole(
            api,
            "P000",
            [
                {"type": "air", "src": "no2", "attributes": {"quantities": ["no2"]}},
                {"type": "other", "src": "wifi", "attributes": {"quantities": ["presenceCount"]}},
                {"type": "small_cell", "src": "cell"},
            ],
        )
        bad = {"type": "other", "owner_id": 1, "attributes": {"quantities": ["faces"]}}
        r = api.call("admin", "POST", "/api/poles/P000/modules", json=bad)
        assert r.status_code == 422 and "quantities" in r.text
        index = ModuleIndex(Registry(api.registry_url), 60)
        index.refresh()
        readings = [
            {"ts": 1, "q": "no2", "v": 1.0, "src": "no2"},
            {"ts": 1, "q": "pm25", "v": 1.0, "src": "no2"},
            {"ts": 1, "q": "presenceCount", "v": 1.0, "src": "wifi"},
            {"ts": 1, "q": "presenceCount", "v": 1.0, "src": "cell"},
            {"ts": 1, "q": "presenceCount", "v": 1.0},
        ]
        assert index.refused("P000", "n1", readings) == [
            (1, "the module with src 'no2' does not measure pm25"),
            (3, "the module with src 'cell' does not measure presenceCount"),
            (4, "no module of the node has src '', none without a src measures presenceCount"),
        ]
        index.registry.close()


def test_a_src_names_its_module_and_modules_without_one_take_the_rest() -> None:
    """Commissioning registers a node's modules without a src: a reading then belongs to the
    one that measures its quantity, whatever src the node gives it; a src that names a module
    binds the reading to that module."""
    from controller.registry.measures import BY_TYPE, owners_of

    air, noise, lamp = BY_TYPE["air"], BY_TYPE["noise"], BY_TYPE["lighting"]
    commissioned = [("", air, "air"), ("", noise, "noise (restricted)"), ("lamp", lamp, "lamp")]
    assert owners_of(commissioned, "pm", "pm25") == ["air"]
    assert owners_of(commissioned, "air", "LAeq") == ["noise (restricted)"]  # not the air one
    assert owners_of(commissioned, "", "LAeq") == ["noise (restricted)"]
    assert owners_of(commissioned, "lamp", "LAeq") == []  # "lamp" names the lighting module
    assert owners_of(commissioned, "lamp", "powerConsumption") == ["lamp"]
    named = [("air", air, "air"), ("noise", noise, "noise")]
    assert owners_of(named, "air", "LAeq") == []
    assert owners_of(named, "mic", "LAeq") == []
    two = [("", air, "city PM"), ("", air, "market NO2")]
    assert owners_of(two, "no2", "no2") == ["city PM", "market NO2"]  # open data: the strictest


def test_a_registry_that_cannot_be_read_neither_loses_nor_forges_readings(
    tmp_path: Path,
) -> None:
    """Ingest reads the modules from the registry: before a first copy it waits (raises: the
    batch is not acknowledged, the broker sends it again), after it the copy serves."""
    import shutil

    from controller.ingest.modules import ModuleIndex
    from tests.ingest_helpers import register

    url = f"sqlite:///{tmp_path / 'reg' / 'registry.db'}"
    register(url, ["P000"])
    reading = [{"ts": 1, "q": "pm25", "v": 1.0, "src": "air"}]
    forged = [{"ts": 1, "q": "LAeq", "v": 1.0, "src": "air"}]
    gone = Registry(f"sqlite:///{tmp_path / 'nothing' / 'x' / 'registry.db'}", False)
    shutil.rmtree(tmp_path / "nothing")  # (Registry made the directory)
    with pytest.raises(Exception, match="unable to open"):
        ModuleIndex(gone, 0).refresh()
    good = Registry(url)
    index = ModuleIndex(good, 0)
    index.refresh()
    index.registry = gone
    index.refresh()  # logs, keeps the copy
    assert index.refused("P000", "n1", reading) == []
    assert index.refused("P000", "n1", forged)  # refused by the copy, the re-read failed
    good.close()
