"""Identity on the broker (issue 18 item 2), attacked as a thief holding one pole's node.json would:
against a real mosquitto with the password and ACL files the controller writes.

- taking over another node's client id, or the client id of one of the controller's processes,
  does not disconnect them (the broker makes every client id its account's username);
- a flood of connections with one node's account leaves at most one live session;
- the controller's real ingest stores every message while an attacker keeps trying its ids.

"Still connected" is proved by a round trip on the victim's own connection after the attacker's
CONNACK: mosquitto closes the old connection of a taken-over client id before it answers the new
CONNECT, so a victim that was taken over sees its socket closed before any later PUBACK.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.broker import Broker, BrokerConfig, free_port
from controller.ingest.worker import IngestWorker
from controller.metrics import Metrics
from controller.mqtt_auth import (
    ROLE_CONTROLLER,
    MqttAccounts,
    controller_usernames,
    generate_secret,
    hash_password,
    node_username,
)
from controller.settings import Settings
from controller.store.ops import OpsStore
from controller.store.sqlite import SqliteStore
from tests.ingest_helpers import meas, meas_topic, publish_all
from tests.test_ingest import count_points
from tests.test_mqtt_auth import Conn, accepted, connect, ok

POLE = "RTD-0001"
TAKEOVER_LOG = "already connected, closing old connection"
CONTROLLER_SECRET = generate_secret()
# The client id the controller used before, fixed and public, and what it uses now.
CONTROLLER_IDS = ("streetpole-controller", *controller_usernames("controller", 3))


@dataclass
class Street:
    broker: Broker
    secrets: dict[str, str]
    conns: list[Conn]

    def node(self, node: str, client_id: str = "", pole: str = POLE) -> Conn:
        user = node_username(pole, node)
        conn = connect(self.broker.port, user, self.secrets[user], client_id=client_id)
        self.conns.append(conn)
        return conn

    def service(self, username: str, client_id: str = "") -> Conn:
        conn = connect(self.broker.port, username, CONTROLLER_SECRET, client_id=client_id)
        self.conns.append(conn)
        return conn


@pytest.fixture
def street(tmp_path: Path) -> Iterator[Street]:
    """Three nodes on a pole and the controller's accounts (three ingest processes)."""
    accounts = MqttAccounts(tmp_path / "auth")
    secrets: dict[str, str] = {}
    for node in ("n1", "n2", "n3"):
        secret = generate_secret()
        secrets[accounts.set_node(POLE, node, hash_password(secret))] = secret
    pw_hash = hash_password(CONTROLLER_SECRET)
    for username in controller_usernames("controller", 3):
        accounts.set_service(username, pw_hash, ROLE_CONTROLLER)
    accounts.write()
    config = BrokerConfig(
        port=free_port(), password_file=accounts.password_file, acl_file=accounts.acl_file
    )
    s = Street(Broker(tmp_path / "broker", config), secrets, [])
    s.broker.start()
    try:
        yield s
    finally:
        for conn in s.conns:
            conn.close()
        s.broker.stop()


def still_connected(victim: Conn, topic: str) -> bool:
    """A QoS 1 round trip on the victim's connection, then: was it ever dropped?"""
    rc = victim.publish(topic, b"still here")
    return ok(rc) and not victim.disconnected.is_set()


def test_node_cannot_take_over_another_nodes_client_id(street: Street) -> None:
    # the firmware's client id is "<pole>-<node>"; the broker now uses the username
    victim = street.node("n1", client_id=f"{POLE}-n1")
    assert accepted(victim)
    for stolen in (f"{POLE}-n1", node_username(POLE, "n1")):
        thief = street.node("n2", client_id=stolen)
        assert accepted(thief), "the thief's own account still works"
        assert still_connected(victim, meas_topic(POLE, "n1")), stolen
    assert f"{node_username(POLE, 'n1')} {TAKEOVER_LOG}" not in street.broker.log()


def test_node_cannot_take_over_the_controllers_client_ids(street: Street) -> None:
    """Each controller process (ingest, an ingest child, the dispatcher) stays connected while a
    node connects with each of their client ids, and with the old fixed public one."""
    ctls = {u: street.service(u, client_id=u) for u in controller_usernames("controller", 3)}
    for stolen in CONTROLLER_IDS:
        thief = street.node("n2", client_id=stolen)
        assert accepted(thief)
    for username, conn in ctls.items():
        assert still_connected(conn, meas_topic(POLE, "n1").replace("meas", "cmd")), username


def test_a_flood_with_one_nodes_account_leaves_one_live_session(street: Street) -> None:
    """200 connections with node n1's account, each with its own client id, as fast as they go;
    then every socket is asked for a PINGRESP: only a live session answers."""
    user = node_username(POLE, "n1")
    socks = [
        connect_raw(street.broker.port, user, street.secrets[user], f"flood-{i}")
        for i in range(200)
    ]
    try:
        live = sum(answers_ping(s) for s in socks)
    finally:
        for s in socks:
            s.close()
    assert live == 1, f"{live} live sessions with one account"


def test_controller_ingest_loses_nothing_while_an_attacker_takes_its_ids(
    street: Street, tmp_path: Path
) -> None:
    """The real ingest worker, with the controller's account, while node n2 connects again and
    again with every client id the controller's processes use; node n1 publishes 3,000 batches."""
    settings = Settings(
        mqtt_url=street.broker.url,
        mqtt_username="controller",
        mqtt_password=CONTROLLER_SECRET,
        data_dir=tmp_path / "ctl",
        _env_file=None,  # type: ignore[call-arg]
    )
    settings.data_dir.mkdir()
    store = SqliteStore(settings.database_path)
    ops = OpsStore(settings.data_dir / "ops.db", settings.dead_letter_max)
    worker = IngestWorker(settings, store, ops, Metrics())
    n = 3000
    stop = threading.Event()
    attempts = [0]

    def attack() -> None:
        user = node_username(POLE, "n2")
        while not stop.is_set():
            for cid in CONTROLLER_IDS:
                connect_raw(street.broker.port, user, street.secrets[user], cid).close()
                attempts[0] += 1

    def publish() -> None:
        user = node_username(POLE, "n1")
        messages = [(meas_topic(POLE, "n1"), meas(i)) for i in range(n)]
        publish_all(street.broker, messages, f"{POLE}-n1", (user, street.secrets[user]))

    async def main() -> None:
        task = asyncio.create_task(worker.run())
        try:
            await asyncio.wait_for(worker.connected.wait(), 10)
            attacker = threading.Thread(target=attack)
            attacker.start()
            try:
                await asyncio.to_thread(publish)
                deadline = time.monotonic() + 60
                while worker.stats.messages < n and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
            finally:
                stop.set()
                await asyncio.to_thread(attacker.join)
        finally:
            task.cancel()

    try:
        asyncio.run(main())
        assert attempts[0] >= len(CONTROLLER_IDS), "the attacker got to try"
        assert worker.stats.connects == 1, "the controller was knocked off the broker"
        assert worker.stats.messages == n
        assert count_points(settings.database_path)[1] == n, "every batch stored"
    finally:
        store.close()
        ops.close()


# -- raw MQTT 3.1.1, for floods (paho's threads would be the bottleneck) -------------------------


def _str(b: bytes) -> bytes:
    return len(b).to_bytes(2, "big") + b


def _remaining(n: int) -> bytes:
    out = bytearray()
    while True:
        d, n = n % 128, n // 128
        out.append(d | (0x80 if n else 0))
        if not n:
            return bytes(out)


def connect_raw(port: int, username: str, password: str, client_id: str) -> socket.socket:
    """CONNECT (clean session, username and password) and wait for an accepting CONNACK."""
    body = (
        b"\x00\x04MQTT\x04\xc2\x00\x3c"
        + _str(client_id.encode())
        + _str(username.encode())
        + _str(password.encode())
    )
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"\x10" + _remaining(len(body)) + body)
    reply = _read(sock, 4)
    assert reply == b"\x20\x02\x00\x00", f"{username} as {client_id} refused: {reply!r}"
    return sock


def _read(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        try:
            chunk = sock.recv(n - len(data))
        except ConnectionError:
            return data
        if not chunk:
            return data
        data += chunk
    return data


def answers_ping(sock: socket.socket) -> bool:
    """PINGREQ; True if PINGRESP comes back (closed or reset by the broker: False)."""
    try:
        sock.sendall(b"\xc0\x00")
    except OSError:
        return False
    return _read(sock, 2) == b"\xd0\x00"
