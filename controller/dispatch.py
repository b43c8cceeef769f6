"""Sends configs (retained) and commands to the nodes over MQTT, from the registry's outbox.

A registry transaction that decides a message writes it into the ``outbox`` table in the same
commit (``AppState.transaction``), so the broker never hears of a command the registry does not
hold and no committed command is lost when a controller dies before sending it. Only the leading
controller (controller/leadership.py) dispatches: one aiomqtt connection drains the outbox in id
order with QoS 1, and a row is deleted only after the broker has acknowledged it (a crash in
between sends it again: at least once, and configs carry versions, commands ids). Routes return
at once: an API call never waits on the broker. What the node then says comes back through
ingest as an ``ack`` and is matched in ``controller.fleet``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
from dataclasses import dataclass

import aiomqtt
from sqlalchemy import delete, select

from controller.mqtt_auth import DISPATCH, process_identity
from controller.registry.db import Registry
from controller.registry.models import OutboxMessage
from controller.settings import Settings

log = logging.getLogger("streetpole.dispatch")

BATCH = 200  # rows read from the outbox at a time


@dataclass(frozen=True)
class Outgoing:
    id: int
    topic: str
    payload: bytes
    retain: bool


class Dispatcher:
    def __init__(
        self, settings: Settings, registry: Registry, leading: asyncio.Event, poll_s: float = 0.25
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.leading = leading
        # how often the leader looks for rows other controllers wrote (its own wake it at once)
        self.poll_s = poll_s
        self.sent = 0
        self.connected = asyncio.Event()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        """New rows were committed; safe to call from any thread (routes run in a thread pool)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def _pending(self) -> list[Outgoing]:
        with self.registry.session() as db:
            rows = db.scalars(select(OutboxMessage).order_by(OutboxMessage.id).limit(BATCH)).all()
            return [
                Outgoing(
                    r.id, r.topic, json.dumps(r.payload, separators=(",", ":")).encode(), r.retain
                )
                for r in rows
            ]

    def _done(self, ids: list[int]) -> None:
        with self.registry.session() as db:
            db.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(ids)))

    async def run(self) -> None:
        s = self.settings
        username, client_id = process_identity(s.mqtt_username, s.mqtt_client_id, DISPATCH)
        self._loop = asyncio.get_running_loop()
        delay = 0.5
        while True:
            await self.leading.wait()
            try:
                async with aiomqtt.Client(
                    s.mqtt_host,
                    s.mqtt_port,
                    identifier=client_id,
                    username=username,
                    password=s.mqtt_password,
                    tls_context=ssl.create_default_context() if s.mqtt_tls else None,
                ) as client:
                    self.connected.set()
                    delay = 0.5
                    await self._drain(client)
                self.connected.clear()  # no longer leading
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                log.warning("dispatch: broker connection lost (%s); retry in %.1fs", exc, delay)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 30.0)

    async def _drain(self, client: aiomqtt.Client) -> None:
        task = asyncio.current_task()
        while self.leading.is_set():
            # A cancel requested and swallowed: aiomqtt's connect waits with asyncio.wait_for,
            # which in Python 3.11 returns the connection and drops a cancel landing as it
            # arrives; this loop then outlived the app's shutdown (a test hung 300 s)
            if task is not None and task.cancelling():
                raise asyncio.CancelledError
            self._wake.clear()  # before reading: a commit after this read wakes the wait below
            batch = await asyncio.to_thread(self._pending)
            if not batch:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancel that
                # lands as its wait ends, and this loop then outlived the app's shutdown
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_s):
                        await self._wake.wait()
                continue
            sent: list[int] = []
            try:
                for msg in batch:
                    if not self.leading.is_set():
                        break
                    await client.publish(msg.topic, msg.payload, qos=1, retain=msg.retain)
                    sent.append(msg.id)
                    self.sent += 1
            finally:
                if sent:  # what the broker acknowledged, also when the connection broke after
                    await asyncio.to_thread(self._done, sent)
