"""Sends configs (retained) and commands to the nodes over MQTT.

Routes enqueue and return at once: an API call never waits on the broker. A single aiomqtt
connection drains the queue with QoS 1 and reconnects with backoff; a message stays at the head
of the queue until the broker has acknowledged it. What the node then says comes back through
ingest as an ``ack`` and is matched in ``controller.fleet``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
from dataclasses import dataclass
from typing import Any

import aiomqtt

from controller.mqtt_auth import DISPATCH, process_identity
from controller.settings import Settings

log = logging.getLogger("streetpole.dispatch")


@dataclass(frozen=True)
class Outgoing:
    topic: str
    payload: bytes
    retain: bool = False


class Dispatcher:
    def __init__(self, settings: Settings, maxsize: int = 100_000) -> None:
        self.settings = settings
        self.queue: asyncio.Queue[Outgoing] = asyncio.Queue(maxsize)
        self.sent = 0
        self._head: Outgoing | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.dropped = 0
        self.connected = asyncio.Event()

    def send(self, topic: str, message: dict[str, Any], retain: bool = False) -> None:
        """Queue a message; safe to call from any thread (routes run in a thread pool)."""
        payload = json.dumps(message, separators=(",", ":")).encode()
        item = Outgoing(topic, payload, retain)
        if self._loop is None:
            self.queue.put_nowait(item)
        else:
            self._loop.call_soon_threadsafe(self._put, item)

    def _put(self, item: Outgoing) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1
            log.error("dispatch queue full: %s not sent (broker gone for long?)", item.topic)

    async def run(self) -> None:
        s = self.settings
        username, client_id = process_identity(s.mqtt_username, s.mqtt_client_id, DISPATCH)
        self._loop = asyncio.get_running_loop()
        delay = 0.5
        while True:
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
                    while True:
                        if self._head is None:
                            self._head = await self.queue.get()
                        msg = self._head
                        await client.publish(msg.topic, msg.payload, qos=1, retain=msg.retain)
                        self._head = None  # only now: a lost connection keeps it for the retry
                        self.queue.task_done()
                        self.sent += 1
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                log.warning("dispatch: broker connection lost (%s); retry in %.1fs", exc, delay)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 30.0)
