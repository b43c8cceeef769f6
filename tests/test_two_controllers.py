"""Two controllers, a broker and PostgreSQL as separate processes, one killed mid-stream (#23).

Each controller has its own broker account and data folder, joins ingest's shared subscription
(each takes a share of the stream, none takes it all) and writes into one PostgreSQL (registry
and time series). Twenty nodes stream measurements; the leading controller is killed with
SIGKILL part way. The survivor keeps storing, answers open data, takes over the lead and
dispatches a command; the killed one is started again (as its supervisor would: mosquitto keeps
what it had in flight, and its turns of the group since, in its persistent session), and then
every reading is stored exactly once.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import paho.mqtt.client as paho
import pytest

from controller.broker import Broker
from controller.mqtt_auth import generate_secret, hash_password
from controller.registry.accounts import create_token, create_user
from controller.registry.db import Registry
from controller.registry.models import Node
from controller.store.base import StreamKey
from controller.store.postgres import PostgresStore
from protocols import topics
from tests.harness.api import kept_accounts, wait_for
from tests.harness.controller_proc import ControllerProcess
from tests.harness.postgres import Postgres
from tests.ingest_helpers import QUANTITIES, meas, meas_topic, register, src_of

pytestmark = pytest.mark.slow

POLES = [f"K{i:03d}" for i in range(20)]
ROUNDS = 60  # messages per node
NODE_PASSWORD = generate_secret()


def stored(store: PostgresStore) -> int:
    """Points held (raw and packed)."""
    return store.size()["points"]


def per_stream(store: PostgresStore) -> dict[int, int]:
    """How many streams hold how many points."""
    counts: dict[int, int] = {}
    for p in POLES:
        for q in QUANTITIES:
            n = len(store.query(StreamKey(p, "n1", src_of(q), q), 0, 2**31, limit=ROUNDS + 10))
            counts[n] = counts.get(n, 0) + 1
    return counts


class Street:
    """The nodes: one MQTT client each, with its own account, publishing at QoS 1."""

    def __init__(self, port: int) -> None:
        self.clients: dict[str, paho.Client] = {}
        self.commands: list[str] = []
        for pole in POLES:
            c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"{pole}/n1")
            c.username_pw_set(f"{pole}/n1", NODE_PASSWORD)
            c.max_inflight_messages_set(50)
            c.on_message = lambda _c, _u, m: self.commands.append(m.topic)
            c.connect("127.0.0.1", port)
            c.loop_start()
            c.subscribe(str(topics.Topic(pole, "n1", topics.CMD)), qos=1)
            self.clients[pole] = c
        self.published = 0
        self.infos: list[paho.MQTTMessageInfo] = []

    def stream(self, rounds: int, rate: float) -> None:
        """``rounds`` messages from every node, a minute of readings each, ending about now,
        ``rate`` messages a second in all."""
        t0 = time.monotonic()
        base = int(time.time()) - 60 * (rounds + 1)
        for seq in range(1, rounds + 1):
            for pole, c in self.clients.items():
                payload = meas(seq, ts=base + 60 * seq)
                self.infos.append(c.publish(meas_topic(pole), payload, qos=1))
                self.published += 1
            ahead = t0 + self.published / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)  # pacing the sender, not waiting for an event
        for info in self.infos:
            info.wait_for_publish(30)

    def close(self) -> None:
        for c in self.clients.values():
            c.loop_stop()
            c.disconnect()


def test_a_controller_killed_mid_stream_loses_and_doubles_nothing(
    tmp_path: Path, postgres: Postgres
) -> None:
    registry_url = postgres.create_database("killed_registry")
    store_url = postgres.create_database("killed_series")
    register(registry_url, POLES)
    reg = Registry(registry_url)
    pw_hash = hash_password(NODE_PASSWORD)
    with reg.session() as db:
        db.add_all(
            Node(
                pole_id=p,
                node="n1",
                mqtt_username=f"{p}/n1",
                mqtt_password_hash=pw_hash,
                update_key="0" * 64,
            )
            for p in POLES
        )
    create_user(reg, "admin", "correct horse battery", "admin")
    token = create_token(reg, "admin", "test")
    node_ids = {p: i for p, i in ((n.pole_id, n.id) for n in _nodes(reg))}
    reg.close()

    kept = kept_accounts(tmp_path)
    broker = Broker(tmp_path / "broker", kept.config)
    broker.start()
    password = generate_secret()

    def controller(name: str) -> ControllerProcess:
        env = {
            "STREETPOLE_DATABASE_URL": registry_url,
            "STREETPOLE_STORE": "postgresql",
            "STREETPOLE_STORE_URL": store_url,
            "STREETPOLE_MQTT_URL": broker.url,
            "STREETPOLE_MQTT_USERNAME": f"controller-{name}",
            "STREETPOLE_MQTT_PASSWORD": password,
            "STREETPOLE_BROKER_AUTH_DIR": str(kept.auth_dir),
            "STREETPOLE_BROKER_PID_FILE": str(kept.pid_file),
        }
        return ControllerProcess(tmp_path / name, env)

    a, b = controller("a"), controller("b")
    store = PostgresStore(store_url)
    street: Street | None = None
    try:
        a.start()
        b.start()
        assert a.get("/readyz").json()["leader"] is True  # the first to start leads
        assert b.get("/readyz").json()["leader"] is False
        street = Street(broker.port)
        total = len(POLES) * ROUNDS
        sender = threading.Thread(target=street.stream, args=(ROUNDS, 300.0))
        sender.start()
        wait_for(lambda: stored(store) >= total * len(QUANTITIES) // 3, 60, "a third stored")
        # the two split the stream: each takes a share, and no message goes to both
        shares = a.ingest_share(), b.ingest_share()
        assert min(shares) > 0, shares
        assert sum(shares) <= street.published, (shares, street.published)
        a.kill()  # mid-stream, the leader, with no clean shutdown
        killed_at = stored(store)
        assert killed_at < total * len(QUANTITIES)

        # the survivor stores on, leads, and answers open data
        wait_for(lambda: stored(store) > killed_at + 1000, 60, "the survivor storing")
        wait_for(lambda: b.get("/readyz").json()["leader"], 30, "the survivor leading")
        latest = b.get("/opendata/v1/latest")
        assert latest.status_code == 200, latest.text
        assert {v["pole"] for v in latest.json()["value"]} == set(POLES)
        obs = b.get("/sta/v1.1/Observations?$top=1&$count=true")
        assert obs.status_code == 200, obs.text
        assert obs.json()["@iot.count"] > 0
        headers = {"Authorization": f"Bearer {token}"}
        node = node_ids[POLES[0]]
        r = httpx.post(
            f"{b.url}/api/nodes/{node}/commands",
            json={"cmd": "selftest"},
            headers=headers,
            timeout=10,
        )
        assert r.status_code in (200, 201, 202), r.text
        cmd_topic = str(topics.Topic(POLES[0], "n1", topics.CMD))
        wait_for(lambda: cmd_topic in street.commands, 30, "the command from the new leader")
        sender.join(120)
        assert not sender.is_alive()
        survivor_done = stored(store)

        # what was in flight to the killed one waits in its session until it is back
        a.start()
        print(f"killed at {killed_at}, survivor had {survivor_done} of {total * len(QUANTITIES)}")
        want = total * len(QUANTITIES)
        wait_for(lambda: stored(store) >= want, 90, "every reading stored")
        assert stored(store) == want
        # every stream has every minute, once: none lost, none twice
        assert per_stream(store) == {ROUNDS: len(POLES) * len(QUANTITIES)}
    finally:
        if street is not None:
            street.close()
        a.stop()
        b.stop()
        store.close()
        broker.stop()


def _nodes(reg: Registry) -> list[Node]:
    with reg.session() as db:
        return list(db.query(Node).all())
