"""The operator API against a real broker: per-node credentials, area overrides, configs,
and a firmware campaign that halts by itself."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from controller.broker import Broker, BrokerConfig, free_port
from controller.mqtt_auth import MqttAccounts, hash_password
from spnode import update
from tests.harness.api import Api, running_api, wait_for


class Tap:
    """A paho client that records every message it receives."""

    def __init__(
        self, port: int, username: str | None = None, password: str | None = None, v5: bool = False
    ) -> None:
        proto = paho.MQTTv5 if v5 else paho.MQTTv311
        self.c = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=f"tap-{free_port()}", protocol=proto
        )
        if username:
            self.c.username_pw_set(username, password)
        self.got: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.refused: Any = None
        self.puback: dict[int, Any] = {}
        self.subacks: set[int] = set()
        self.c.on_message = self._msg
        self.c.on_subscribe = lambda c, u, mid, codes, props: self.subacks.add(mid)
        self.c.on_connect = self._conn
        self.c.on_publish = lambda c, u, mid, rc, props: self.puback.__setitem__(mid, rc)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def _conn(self, c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            self.refused = rc
        else:
            self.connected.set()

    def _msg(self, c: Any, u: Any, m: paho.MQTTMessage) -> None:
        with self.lock:
            self.got.append((m.topic, json.loads(m.payload) if m.payload else {}))

    def sub(self, topic: str) -> None:
        assert self.connected.wait(10), f"not connected: {self.refused}"
        _, mid = self.c.subscribe(topic, qos=1)
        wait_for(lambda: mid in self.subacks, 10, f"SUBACK of {topic}")

    def messages(self, suffix: str = "") -> list[tuple[str, dict[str, Any]]]:
        with self.lock:
            return [(t, m) for t, m in self.got if t.endswith(suffix)]

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def street(api: Api, n: int, grid: int = 3) -> list[dict[str, Any]]:
    """n poles on a grid 40 m apart, each with a lighting module and a provisioned node."""
    city = api.ok("admin", "POST", "/api/owners", json={"slug": "city", "name": "City"})
    creds = []
    for i in range(n):
        pid = f"P{i:03d}"
        api.ok(
            "admin",
            "POST",
            "/api/poles",
            json={
                "id": pid,
                "lat": 51.88 + (i // grid) * 0.00036,
                "lon": 4.53 + (i % grid) * 0.00058,
                "owner_id": city["id"],
            },
        )
        api.ok(
            "admin",
            "POST",
            f"/api/poles/{pid}/modules",
            json={
                "type": "lighting",
                "owner_id": city["id"],
                "node": "n1",
                "src": "lamp",
                "rated_power_w": 40,
            },
        )
        creds.append(api.ok("admin", "POST", "/api/nodes", json={"pole": pid, "node": "n1"}))
    return creds


@pytest.fixture
def anon(tmp_path: Path, broker: Broker) -> Iterator[tuple[Api, Broker]]:
    with running_api(tmp_path, mqtt_url=broker.url) as api:
        wait_for(lambda: api.state.dispatcher.connected.is_set(), what="dispatcher")
        yield api, broker


@pytest.mark.slow
def test_area_override_reaches_exactly_the_nodes_inside_and_expires(
    anon: tuple[Api, Broker],
) -> None:
    api, broker = anon
    street(api, 9)
    tap = Tap(broker.port)
    try:
        tap.sub("streetpole/v1/+/+/cmd")
        # a box around the two left columns of the two lower rows: P000 P001 P003 P004
        bbox = [4.5299, 51.8799, 4.5306, 51.88037]
        ov = api.ok(
            "admin",
            "POST",
            "/api/overrides",
            json={"area": {"bbox": bbox}, "level": 0.9, "duration_s": 2},
        )
        assert ov["active"] and ov["nodes"] == 4
        got = wait_for(lambda: len(tap.messages()) >= 4 and tap.messages(), what="4 commands")
        for _, cmd in got:
            assert cmd["cmd"] == "override" and cmd["level"] == 0.9
            assert cmd["expiry"] - cmd["start"] == 2
        # a triangle: only P008's corner (and, sent after the box's commands by the same
        # dispatcher, the mark that nothing else of the box's arrives)
        tri = [[4.5310, 51.8806], [4.5313, 51.8806], [4.5313, 51.8809], [4.5310, 51.8806]]
        ev = api.ok(
            "admin",
            "POST",
            "/api/overrides",
            json={"area": {"polygon": tri}, "mode": "event", "level": 0.2},
        )
        assert ev["nodes"] == 1 and ev["level"] == 1.0  # event mode is full light

        def before_the_event() -> list[str] | None:
            sent = [t.split("/")[2] for t, _ in tap.messages()]
            return sent[: sent.index("P008")] if "P008" in sent else None

        box = wait_for(before_the_event, what="the event command after the box's")
        assert sorted(box) == ["P000", "P001", "P003", "P004"]
        # expiry: the first override stops being active on time, the event one goes on
        wait_for(
            lambda: not api.ok("admin", "GET", f"/api/overrides/{ov['id']}")["active"],
            timeout=5,
            what="expiry",
        )
        active = api.ok("admin", "GET", "/api/overrides", params={"active": True})
        assert [o["id"] for o in active] == [ev["id"]]
        api.ok("admin", "POST", f"/api/overrides/{ev['id']}/revert")
        wait_for(lambda: tap.messages()[-1][1]["cmd"] == "revert", what="revert")
        assert not api.ok("admin", "GET", f"/api/overrides/{ev['id']}")["active"]
        # the node's ack settles the command
        cmd_id = got[0][1]["id"]
        topic = got[0][0].replace("/cmd", "/ack")
        tap.c.publish(
            topic,
            json.dumps({"id": cmd_id, "kind": "cmd", "ts": int(time.time()), "status": "applied"}),
            qos=1,
        )

        def settled() -> bool:
            cmds = api.ok("admin", "GET", f"/api/overrides/{ov['id']}/commands")
            return any(c["id"] == cmd_id and c["status"] == "applied" for c in cmds)

        wait_for(settled, what="ack applied")
    finally:
        tap.close()


@pytest.mark.slow
def test_profile_compiles_to_retained_configs_and_the_node_answer_is_kept(
    anon: tuple[Api, Broker],
) -> None:
    api, broker = anon
    street(api, 3)
    api.ok(
        "admin",
        "POST",
        "/api/programs",
        json={
            "name": "standard",
            "steps": [
                {"at": "sunset", "offset_min": -10, "level": 1.0},
                {"at": "23:00", "level": 0.4},
                {"at": "sunrise", "level": 0},
            ],
        },
    )
    r = api.call("admin", "POST", "/api/profiles", json={"name": "bad", "default_program": "nope"})
    assert r.status_code == 422 and "nope" in r.text
    prof = api.ok(
        "admin",
        "POST",
        "/api/profiles",
        json={
            "name": "street",
            "default_program": "standard",
            "min_level": 0.1,
            "presence": {
                "level": 1.0,
                "hold_s": 60,
                "ramp_up_s": 1.5,
                "ramp_down_s": 20,
                "neighbour_level": 0.7,
            },
        },
    )
    g = api.ok(
        "admin",
        "POST",
        "/api/groups",
        json={"name": "all", "poles": ["P000", "P001", "P002"], "profile_id": prof["id"]},
    )
    assert g["profile_id"] == prof["id"]
    tap = Tap(broker.port)
    try:
        tap.sub("streetpole/v1/+/+/config")  # retained: the latest version of each node

        def latest() -> dict[str, dict[str, Any]]:  # the newest config per pole
            return {t.split("/")[2]: m for t, m in tap.messages()}

        wait_for(
            lambda: (
                len(latest()) == 3
                and all("standard" in m["dimming"]["programs"] for m in latest().values())
            ),
            what="3 configs with the group's profile",
        )
        configs = {t.split("/")[2]: m for t, m in tap.messages()}
        assert configs["P001"]["dimming"]["programs"]["standard"]["steps"][1]["at"] == "23:00"
        # neighbours within 60 m: P001 sits between P000 and P002 (about 40 m each)
        assert {n["pole"] for n in configs["P001"]["neighbours"]} == {"P000", "P002"}
        node = api.ok("admin", "GET", "/api/nodes", params={"pole": "P001"})[0]
        version = configs["P001"]["version"]
        tap.c.publish(
            "streetpole/v1/P001/n1/ack",
            json.dumps(
                {
                    "id": str(version),
                    "kind": "config",
                    "ts": int(time.time()),
                    "status": "rejected",
                    "reason": "tz: bad rule",
                }
            ),
            qos=1,
        )

        def answered() -> dict[str, Any] | None:
            rows = api.ok("admin", "GET", f"/api/nodes/{node['id']}/configs")
            return next(
                (r for r in rows if r["version"] == version and r["status"] != "pending"), None
            )

        row = wait_for(answered, what="config ack")
        assert row["status"] == "rejected" and row["reason"] == "tz: bad rule"
    finally:
        tap.close()


@pytest.mark.slow
def test_campaign_halts_by_itself_past_its_failure_threshold(anon: tuple[Api, Broker]) -> None:
    api, broker = anon
    creds = street(api, 8)
    g = api.ok(
        "admin",
        "POST",
        "/api/groups",
        json={"name": "rollout", "poles": [f"P{i:03d}" for i in range(8)]},
    )
    archive = update.pack([("spnode/__init__.py", b"VERSION = '0.2.0'\n")])
    pkg = api.ok(
        "admin",
        "POST",
        "/api/firmware",
        data={"version": "0.2.0"},
        files={"file": ("fw.spa", archive)},
    )
    assert api.client.get(pkg["url"].split("8000", 1)[-1]).content == archive
    bad = api.call(
        "admin",
        "POST",
        "/api/firmware",
        data={"version": "0.3.0"},
        files={"file": ("x.bin", b"not an archive")},
    )
    assert bad.status_code == 422 and bad.json()["detail"].startswith("file")
    tap = Tap(broker.port)
    try:
        tap.sub("streetpole/v1/+/+/cmd")
        camp = api.ok(
            "admin",
            "POST",
            "/api/campaigns",
            json={
                "package_id": pkg["id"],
                "group_id": g["id"],
                "nodes_per_minute": 60,
                "failure_threshold": 0.5,
                "min_finished": 3,
            },
        )
        keys = {c["node"]["pole_id"]: c["update_key"] for c in creds}
        answered: set[str] = set()

        def fail_updates() -> bool:
            for topic, cmd in tap.messages("/cmd"):
                if cmd["id"] in answered:
                    continue
                pole = topic.split("/")[2]
                # the command is signed with this node's own key, as the firmware checks it
                update.verify_command(cmd, bytes.fromhex(keys[pole]), f"{pole}/n1")
                with pytest.raises(update.UpdateError):
                    update.verify_command(
                        cmd, bytes.fromhex(keys["P007" if pole != "P007" else "P000"]), f"{pole}/n1"
                    )
                answered.add(cmd["id"])
                tap.c.publish(
                    topic.replace("/cmd", "/ack"),
                    json.dumps(
                        {
                            "id": cmd["id"],
                            "kind": "cmd",
                            "ts": int(time.time()),
                            "status": "failed",
                            "reason": "sha256: mismatch",
                        }
                    ),
                    qos=1,
                )
            state = api.ok("admin", "GET", f"/api/campaigns/{camp['id']}")["state"]
            return state == "halted"

        wait_for(fail_updates, timeout=30, what="campaign halt")
        final = api.ok("admin", "GET", f"/api/campaigns/{camp['id']}")
        assert "failed" in final["halted_reason"]
        assert final["nodes"]["failed"] >= 3 and final["nodes"].get("pending", 0) >= 3
        # a whole fleet round after the halt, then a command through the same dispatcher: what
        # that round sent would arrive before it
        rounds = api.state.fleet_rounds
        wait_for(lambda: api.state.fleet_rounds >= rounds + 2, 10, "another fleet round")
        node = api.ok("admin", "GET", "/api/nodes", params={"pole": "P000"})[0]
        api.ok("admin", "POST", f"/api/nodes/{node['id']}/commands", json={"cmd": "reboot"})
        wait_for(lambda: any(m["cmd"] == "reboot" for _, m in tap.messages("/cmd")), what="mark")
        assert len([m for _, m in tap.messages("/cmd") if m["cmd"] != "reboot"]) == len(answered)
        assert len(answered) < 8
        log = api.ok("admin", "GET", "/api/audit", params={"target_type": "campaign"})
        assert log[-1]["action"] == "campaign.create" and log[-1]["actor"] == "admin"
    finally:
        tap.close()


@pytest.mark.slow
def test_node_credentials_cannot_speak_for_another_node(tmp_path: Path) -> None:
    auth = tmp_path / "auth"
    accounts = MqttAccounts(auth)
    accounts.set_service("controller", hash_password("controller-secret"), "controller")
    accounts.write()
    pid = tmp_path / "mosquitto.pid"
    broker = Broker(
        tmp_path / "broker",
        BrokerConfig(
            port=free_port(),
            password_file=accounts.password_file,
            acl_file=accounts.acl_file,
            pid_file=pid,
        ),
    )
    broker.start()
    taps: list[Tap] = []
    try:
        with running_api(
            tmp_path / "ctl",
            mqtt_url=broker.url,
            mqtt_username="controller",
            mqtt_password="controller-secret",
            broker_auth_dir=auth,
            broker_pid_file=pid,
        ) as api:
            a, b = street(api, 2)
            assert a["mqtt_username"] == "P000/n1" and len(a["mqtt_password"]) >= 32
            node_a = api.ok("admin", "GET", f"/api/nodes/{a['node']['id']}")
            assert "password" not in json.dumps(node_a)  # shown once, never again

            def connect(c: dict[str, Any]) -> Tap:
                t = Tap(broker.port, c["mqtt_username"], c["mqtt_password"], v5=True)
                taps.append(t)
                return t

            ta = wait_for(lambda: (t := connect(a)).connected.wait(1) and t, what="A connects")
            tb = connect(b)
            assert tb.connected.wait(5)
            wrong = Tap(broker.port, "P000/n1", b["mqtt_password"])
            taps.append(wrong)
            wait_for(lambda: wrong.refused is not None, 10, "the wrong password refused")
            assert not wrong.connected.is_set()

            ta.sub("streetpole/v1/P001/n1/cmd")  # B's commands
            ta.sub("streetpole/v1/P000/n1/cmd")  # its own
            tb.sub("streetpole/v1/P001/n1/cmd")
            tb.sub("streetpole/v1/P001/n1/config")
            wait_for(lambda: tb.messages("/config"), what="B's retained config")
            for node in (b, a):  # A's own command goes out after B's, from the same dispatcher
                nid = node["node"]["id"]
                api.ok("admin", "POST", f"/api/nodes/{nid}/commands", json={"cmd": "reboot"})
            wait_for(lambda: tb.messages("/cmd"), what="B gets its command")
            wait_for(lambda: ta.messages("/cmd"), what="A gets its own command")
            assert [t for t, _ in ta.messages("/cmd")] == ["streetpole/v1/P000/n1/cmd"]

            def meas(seq: int) -> str:
                reading = {
                    "ts": int(time.time()) - 120 + 60 * seq,
                    "q": "powerConsumption",  # its lighting module's
                    "v": 9.5,
                    "dur": 60,
                    "src": "lamp",
                }
                return json.dumps({"boot": 1, "seq": seq, "readings": [reading]})

            props = Properties(PacketTypes.PUBLISH)
            own = ta.c.publish("streetpole/v1/P000/n1/meas", meas(0), qos=1, properties=props)
            forged = ta.c.publish("streetpole/v1/P001/n1/meas", meas(0), qos=1, properties=props)
            # the mark: what the broker took from A before it reaches ingest before this
            mark = ta.c.publish("streetpole/v1/P000/n1/meas", meas(1), qos=1, properties=props)
            for info in (own, forged, mark):
                info.wait_for_publish(5)
            wait_for(lambda: forged.mid in ta.puback, what="PUBACK")
            assert ta.puback[forged.mid].value == 0x87  # not authorised
            stats = lambda: api.ok("admin", "GET", "/api/ingest/stats")  # noqa: E731
            wait_for(lambda: stats()["stored_points"] >= 2, what="A's own readings stored")
            assert stats()["stored_points"] == 2
            assert {s.pole for s in api.state.store.streams()} == {"P000"}

            # removal: its credentials stop working
            api.ok("admin", "DELETE", f"/api/nodes/{a['node']['id']}")
            wait_for(lambda: not ta.c.is_connected(), what="A disconnected by the reload")
            again = Tap(broker.port, a["mqtt_username"], a["mqtt_password"])
            taps.append(again)
            wait_for(lambda: again.refused is not None, 10, "the removed node refused")
            assert not again.connected.is_set()
    finally:
        for t in taps:
            t.close()
        broker.stop()


@pytest.mark.slow
def test_alarms_from_last_will_and_events_energy_and_owner_scope(
    anon: tuple[Api, Broker],
) -> None:
    api, broker = anon
    street(api, 2)
    other = api.ok("admin", "POST", "/api/owners", json={"slug": "other", "name": "Other"})
    api.ok(
        "admin",
        "POST",
        "/api/poles",
        json={"id": "Q000", "lat": 51.9, "lon": 4.5, "owner_id": other["id"]},
    )
    api.ok("admin", "POST", "/api/nodes", json={"pole": "Q000", "node": "n1"})
    api.account("other-ops", "operator", owner="other")
    tap = Tap(broker.port)
    try:
        now = int(time.time())
        tap.c.publish(
            "streetpole/v1/P000/n1/state",
            json.dumps({"status": "offline", "fw": "0.1.0", "boot": 3}),
            qos=1,
            retain=True,
        )
        tap.c.publish(
            "streetpole/v1/P001/n1/event",
            json.dumps(
                {
                    "boot": 1,
                    "seq": 1,
                    "ts": now,
                    "kind": "alarm",
                    "code": "lampFailure",
                    "active": True,
                    "detail": "no current at level 0.80",
                }
            ),
            qos=1,
        )
        tap.c.publish(
            "streetpole/v1/Q000/n1/event",
            json.dumps(
                {
                    "boot": 1,
                    "seq": 1,
                    "ts": now,
                    "kind": "alarm",
                    "code": "pm25High",
                    "active": True,
                    "src": "air",
                }
            ),
            qos=1,
        )
        # lamp energy: 100 Wh in one hour of yesterday
        day = time.gmtime(now - 86400)
        start = int(
            time.mktime((day.tm_year, day.tm_mon, day.tm_mday, 0, 0, 0, 0, 0, 0)) - time.timezone
        )
        tap.c.publish(
            "streetpole/v1/P000/n1/meas",
            json.dumps(
                {
                    "boot": 1,
                    "seq": 1,
                    "readings": [
                        {
                            "ts": start + 3600 * (h + 1),
                            "q": "energyConsumed",
                            "v": 25.0,
                            "dur": 3600,
                            "src": "lamp",
                        }
                        for h in range(4)
                    ],
                }
            ),
            qos=1,
        )

        def alarms(who: str = "admin") -> dict[tuple[str, str], dict[str, Any]]:
            rows = api.ok(who, "GET", "/api/alarms", params={"state": "open"})
            return {(a["pole_id"], a["code"]): a for a in rows}

        got = wait_for(lambda: len(alarms()) == 3 and alarms(), what="three alarms")
        assert got[("P000", "nodeOffline")]["severity"] == "major"
        assert got[("P001", "lampFailure")]["detail"] == "no current at level 0.80"
        assert list(alarms("other-ops")) == [("Q000", "pm25High")]  # only its own
        lamp = got[("P001", "lampFailure")]["id"]
        assert api.call("other-ops", "POST", f"/api/alarms/{lamp}/acknowledge").status_code == 404
        acked = api.ok("admin", "POST", f"/api/alarms/{lamp}/acknowledge")
        assert acked["state"] == "acknowledged" and acked["acknowledged_by"] == "admin"
        # the node comes back: its offline alarm clears by itself
        tap.c.publish(
            "streetpole/v1/P000/n1/state",
            json.dumps(
                {
                    "status": "online",
                    "ts": now,
                    "fw": "0.1.0",
                    "boot": 4,
                    "uptime_s": 1,
                    "heap_free": 50000,
                    "reset_cause": "power_on",
                    "level": 0.0,
                }
            ),
            qos=1,
            retain=True,
        )
        wait_for(lambda: ("P000", "nodeOffline") not in alarms(), what="offline alarm cleared")
        node = api.ok("admin", "GET", "/api/nodes", params={"pole": "P000"})[0]
        assert node["status"] == "online" and node["firmware_version"] == "0.1.0"

        iso = time.strftime("%Y-%m-%d", day)
        energy = wait_for(
            lambda: (
                (e := api.ok("admin", "GET", "/api/energy/poles/P000", params={"start": iso}))[
                    "energy_wh"
                ]
                and e
            ),
            what="energy stored",
        )
        assert energy["energy_wh"] == 100.0
        # 40 W through the four (dark) hours the lamp reported for, not the whole night
        assert energy["baseline_wh"] == 160.0 and energy["covered_h"] == 4.0
        assert energy["saving_wh"] == round(energy["baseline_wh"] - 100.0, 1)
        r = api.call("other-ops", "GET", "/api/energy/poles/P000", params={"start": iso})
        assert r.status_code == 404
    finally:
        tap.close()
