"""The node's MQTT client: exact packet bytes on both interpreters, and behaviour against a real
mosquitto (last will, restart, first connect failing, QoS 1 acknowledgement)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from controller.broker import Broker, BrokerConfig, free_port
from spnode.mqtt_client import MQTTClient, NotConnected
from tests.harness.micropython import run_micropython
from tests.harness.paths import ROOT
from tests.harness.wait import until

PACKET_CHECKS = ROOT / "tests" / "mp" / "check_mqtt_packets.py"


def test_packet_bytes_on_cpython() -> None:
    proc = subprocess.run(
        [sys.executable, str(PACKET_CHECKS)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": f"{ROOT}:{ROOT / 'firmware'}"},
    )
    assert proc.stdout.strip() == "OK", proc.stderr


def test_packet_bytes_on_micropython() -> None:
    assert run_micropython(PACKET_CHECKS).stdout.strip() == "OK"


@contextmanager
def peer(broker: Broker, *subscriptions: str) -> Iterator[list[tuple[str, bytes, bool]]]:
    """An independent paho-mqtt client collecting (topic, payload, retained)."""
    got: list[tuple[str, bytes, bool]] = []
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    client.on_message = lambda _c, _u, m: got.append((m.topic, m.payload, bool(m.retain)))
    client.connect(broker.host, broker.port)
    for sub in subscriptions:
        client.subscribe(sub, qos=1)
    client.loop_start()
    try:
        yield got
    finally:
        client.loop_stop()
        client.disconnect()


@pytest.fixture
def sub_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker that logs every SUBSCRIBE and UNSUBSCRIBE: mosquitto handles one packet at a
    time, so once a client's line is in the log, a publish sent after it meets the change."""
    extra = ["log_type subscribe", "log_type unsubscribe"]
    b = Broker(tmp_path / "broker", BrokerConfig(port=free_port(), extra=extra))
    b.start()
    try:
        yield b
    finally:
        b.stop()
    assert not b.dropped_messages_logged(), b.log()


def logged(broker: Broker, line: str) -> int:
    """How often mosquitto logged ``line`` ("<client> <qos> <filter>" for a subscription,
    "<client> <filter>" for an unsubscription), after its timestamp."""
    return len(re.findall(rf"^\d+: {re.escape(line)}$", broker.log(), re.M))


def test_publish_subscribe_birth_and_last_will(broker: Broker, topic_prefix: str) -> None:
    state = f"{topic_prefix}/state"
    received: list[tuple[str, bytes, bool]] = []

    async def main() -> None:
        async def birth(c: MQTTClient) -> None:
            await c.publish(state, b"online", qos=1, retain=True)

        client = MQTTClient(
            "node-a",
            broker.host,
            broker.port,
            keepalive=5,
            will=(state, b"offline", 1, True),
            on_connect=birth,
            on_message=lambda t, p, r: received.append((t, p, r)),
        )
        client.subscribe(f"{topic_prefix}/cmd", 1)
        task = asyncio.create_task(client.run())
        await asyncio.wait_for(client.up.wait(), 5)
        with peer(broker, state) as got:
            await until(lambda: (state, b"online", True) in got)
            pub = paho.Client(paho.CallbackAPIVersion.VERSION2)
            pub.connect(broker.host, broker.port)
            pub.loop_start()
            pub.publish(f"{topic_prefix}/cmd", b"reboot", qos=1).wait_for_publish(5)
            await until(lambda: received)
            assert received == [(f"{topic_prefix}/cmd", b"reboot", False)]
            assert await client.publish(f"{topic_prefix}/meas", b"x", qos=1) is True
            # an abrupt loss (no DISCONNECT) makes the broker publish the last will
            assert client._writer is not None
            client._writer.transport.abort()  # type: ignore[attr-defined]
            await until(lambda: (state, b"offline", False) in got)
            # ... and the client comes back by itself and says it is online again
            await until(lambda: client.connects == 2)
            await until(lambda: got[-1][:2] == (state, b"online"))
            pub.loop_stop()
            pub.disconnect()
        await client.stop()
        task.cancel()

    asyncio.run(main())


def test_subscribe_several_in_one_packet_and_unsubscribe(
    sub_broker: Broker, topic_prefix: str
) -> None:
    """Neighbour topics come and go with the config: subscribed in one SUBSCRIBE, and a topic
    unsubscribed is neither delivered now nor subscribed again after a reconnect."""
    broker = sub_broker
    received: list[str] = []
    a, b = f"{topic_prefix}/a", f"{topic_prefix}/b"

    async def main() -> None:
        client = MQTTClient("node-u", broker.host, broker.port, keepalive=5,
                            on_message=lambda t, p, r: received.append(t))  # fmt: skip
        task = asyncio.create_task(client.run())
        await asyncio.wait_for(client.up.wait(), 5)
        pub = paho.Client(paho.CallbackAPIVersion.VERSION2)
        pub.connect(broker.host, broker.port)
        pub.loop_start()

        async def send_both_and_mark() -> None:
            pub.publish(a, b"1", qos=1).wait_for_publish(5)
            pub.publish(b, b"1", qos=1).wait_for_publish(5)
            pub.publish(f"{topic_prefix}/mark", b"1", qos=1).wait_for_publish(5)
            await until(lambda: received and received[-1].endswith("/mark"))

        client.subscribe([a, b, f"{topic_prefix}/mark"], 0)
        await until(lambda: logged(broker, f"node-u 0 {topic_prefix}/mark"))
        assert logged(broker, f"node-u 0 {a}") == logged(broker, f"node-u 0 {b}") == 1
        await send_both_and_mark()
        assert received == [a, b, f"{topic_prefix}/mark"]
        received.clear()
        client.unsubscribe([b, f"{topic_prefix}/unknown"])
        await until(lambda: logged(broker, f"node-u {b}"))
        await send_both_and_mark()
        assert received == [a, f"{topic_prefix}/mark"]
        received.clear()
        assert client._writer is not None
        client._writer.transport.abort()  # type: ignore[attr-defined]
        await until(lambda: logged(broker, f"node-u 0 {topic_prefix}/mark") == 2)
        assert client.connects == 2
        assert logged(broker, f"node-u 0 {a}") == 2 and logged(broker, f"node-u 0 {b}") == 1
        await send_both_and_mark()
        assert received == [a, f"{topic_prefix}/mark"]
        pub.loop_stop()
        pub.disconnect()
        await client.stop()
        task.cancel()

    asyncio.run(main())


def test_reconnects_after_broker_restart_and_resubscribes(
    broker: Broker, topic_prefix: str
) -> None:
    received: list[bytes] = []

    async def main() -> None:
        client = MQTTClient(
            "node-b",
            broker.host,
            broker.port,
            keepalive=2,
            backoff_ms=(100, 500),
            on_message=lambda t, p, r: received.append(p),
        )
        client.subscribe(f"{topic_prefix}/cmd", 1)
        task = asyncio.create_task(client.run())
        await asyncio.wait_for(client.up.wait(), 5)
        await asyncio.to_thread(broker.stop)
        await until(lambda: not client.connected)
        with pytest.raises(NotConnected):  # offline: refuses at once, the caller keeps the data
            await client.publish(f"{topic_prefix}/meas", b"x", qos=1)
        await asyncio.to_thread(broker.start)
        await asyncio.wait_for(client.up.wait(), 10)
        assert client.connects == 2
        with peer(broker) as _:
            pub = paho.Client(paho.CallbackAPIVersion.VERSION2)
            pub.connect(broker.host, broker.port)
            pub.loop_start()
            await until(
                lambda: (pub.publish(f"{topic_prefix}/cmd", b"after", qos=1), received)[1],
                timeout=10,
            )
            pub.loop_stop()
            pub.disconnect()
        assert b"after" in received
        await client.stop()
        task.cancel()

    asyncio.run(main())


def test_first_connect_fails_then_succeeds_when_broker_comes_up(tmp_path: Path) -> None:
    """After a power cut the node may boot before the network or broker is back."""
    late = Broker(tmp_path / "late", BrokerConfig(port=free_port()))

    async def main() -> None:
        client = MQTTClient("node-c", late.host, late.port, backoff_ms=(100, 400))
        task = asyncio.create_task(client.run())
        await until(lambda: client.failures >= 2)
        assert not client.connected
        threading.Thread(target=late.start).start()
        await asyncio.wait_for(client.up.wait(), 10)
        assert client.connects == 1
        await client.stop()
        task.cancel()

    try:
        asyncio.run(main())
    finally:
        late.stop()
