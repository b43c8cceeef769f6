"""One controller leads (dispatch, the fleet's rounds, retention) and the outbox keeps what it
has not sent (#23): the lead moves when its holder's connection goes, and a message committed
while no controller leads goes out when one does."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import paho.mqtt.client as paho

from controller.broker import Broker
from controller.dispatch import Dispatcher
from controller.leadership import Leadership
from controller.registry.db import Registry
from controller.registry.models import OutboxMessage
from controller.settings import Settings
from tests.harness.postgres import Postgres
from tests.harness.wait import wait_for


async def _until(cond: asyncio.Event, timeout: float, what: str) -> None:
    try:
        await asyncio.wait_for(cond.wait(), timeout)
    except TimeoutError:
        raise AssertionError(f"{what}: not within {timeout} s") from None


def test_one_controller_leads_and_another_takes_over_when_it_goes(postgres: Postgres) -> None:
    url = postgres.create_database("leadership")
    Registry(url).close()  # migrated

    async def run() -> None:
        first, second = Leadership(url, poll_s=0.05), Leadership(url, poll_s=0.05)
        a = asyncio.create_task(first.run())
        await _until(first.leading, 10, "the first leading")
        b = asyncio.create_task(second.run())
        # the second has tried (its connection is up and it asked) and does not lead
        for _ in range(10):
            await asyncio.sleep(second.poll_s)  # rounds of its own loop, not a stand-in event
        assert not second.leading.is_set()
        a.cancel()  # its connection closes: PostgreSQL lets the lock go
        await asyncio.gather(a, return_exceptions=True)
        await _until(second.leading, 10, "the second taking over")
        assert second.taken == 1
        b.cancel()
        await asyncio.gather(b, return_exceptions=True)

    asyncio.run(run())


def test_sqlite_registry_means_one_controller_which_leads(tmp_path: Path) -> None:
    lead = Leadership(f"sqlite:///{tmp_path / 'r.db'}")
    assert not lead.shared
    asyncio.run(lead.run())
    assert lead.leading.is_set()


def test_the_outbox_keeps_a_message_until_a_leader_sends_it(tmp_path: Path, broker: Broker) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    reg = Registry(url)
    got: list[tuple[str, bytes, bool]] = []
    sub = paho.Client(paho.CallbackAPIVersion.VERSION2)
    sub.on_message = lambda _c, _u, m: got.append((m.topic, m.payload, bool(m.retain)))
    sub.connect(broker.host, broker.port)
    sub.subscribe("sp/#", qos=1)
    sub.loop_start()
    try:
        with reg.session() as db:
            db.add(OutboxMessage(topic="sp/P1/n1/cmd", payload={"cmd": "reboot"}, retain=False))
        settings = Settings(data_dir=tmp_path, mqtt_url=broker.url, _env_file=None)  # type: ignore[call-arg]

        async def run() -> None:
            leading = asyncio.Event()
            d = Dispatcher(settings, reg, leading, poll_s=0.05)
            task = asyncio.create_task(d.run())
            await asyncio.sleep(0)
            assert d.sent == 0 and not d.connected.is_set()  # a follower does not connect
            leading.set()
            await asyncio.to_thread(wait_for, lambda: d.sent == 1, 10, "sent by the leader")
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        asyncio.run(run())
        wait_for(lambda: got, 10, "the message at a subscriber")
        assert got == [("sp/P1/n1/cmd", b'{"cmd":"reboot"}', False)]
        with reg.session() as db:
            assert db.query(OutboxMessage).count() == 0  # deleted after the broker's ack
    finally:
        sub.loop_stop()
        sub.disconnect()
        reg.close()


def test_a_cancel_a_library_swallowed_still_stops_the_dispatcher(tmp_path: Path) -> None:
    """aiomqtt connects with asyncio.wait_for, which in Python 3.11 returns the connection and
    drops a cancel that lands as the CONNACK does; the dispatcher then went on draining the
    outbox and the app's shutdown hung. The cancel request is still on the task
    (Task.cancelling), and the drain loop honours it."""
    reg = Registry(f"sqlite:///{tmp_path / 'registry.db'}")
    settings = Settings(data_dir=tmp_path, _env_file=None)  # type: ignore[call-arg]

    async def run() -> None:
        leading = asyncio.Event()
        leading.set()
        d = Dispatcher(settings, reg, leading, poll_s=0.05)
        connecting = asyncio.Event()

        async def connect_then_drain() -> None:
            connecting.set()
            # the connect, when the cancel lands: 3.11's wait_for drops it as the CONNACK comes
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()
            await d._drain(None)  # type: ignore[arg-type]  # an empty outbox: no publish

        task = asyncio.create_task(connect_then_drain())
        await connecting.wait()
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=5)
        assert done, "the dispatcher went on after its cancel"
        assert task.cancelled()

    try:
        asyncio.run(run())
    finally:
        reg.close()
