"""Ingest's connection to the broker: an ``asyncio.Protocol`` over protocols/mqtt_framing.py.

Why not aiomqtt here (it stays where its public API serves: the dispatcher, the fleet): ingest
must acknowledge a QoS 1 message only after its batch is committed, and at ingest's rate
aiomqtt's delivery path (a message object, a queue and a task wake-up per message, over paho's
per-packet reads) cost more than decoding and storing together; both were reachable only
through private names of aiomqtt and paho. This protocol takes every packet out of one read of
the socket with the shared framing, hands the PUBLISH packets of each read as they are, the
framing's tuples ``(type, flags, packet id, topic, payload)``, in one list to ``on_publish`` on
the event loop's thread (one call a read, not a message: ingest's pace), and leaves the
acknowledgement to the caller: ``ack()`` writes the PUBACKs of a committed batch in one write.

It speaks MQTT 3.1.1 with a persistent session: connect, unsubscribe and subscribe (each waits
for its acknowledgement), a PINGREQ every half keepalive, and the connection declared dead when
nothing has come for one and a half. Whatever ends the connection (the socket, a refusal, a
broker that sends something that is not MQTT, a timeout) raises ``SessionEnded`` saying why, and
the caller connects again: a malformed frame never gets further than this module.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from controller.broker import BrokerConfig
from protocols import mqtt_framing as mf

Packet = tuple[int, int, int, str | None, bytes]  # see protocols/mqtt_framing.py
Publish = tuple[int, int, int, str, bytes]  # a PUBLISH packet: it has its topic

# One PUBACK per packet id: a committed batch's acknowledgements are joined from here.
_PUBACKS = [b""] + [mf.send_puback(pid) for pid in range(1, 65536)]


class SessionEnded(Exception):
    """The connection to the broker could not be made or has ended; the message says why."""


@dataclass(frozen=True)
class Session:
    """Whom to connect to, and as whom."""

    host: str
    port: int
    client_id: str
    username: str | None = None
    password: str | None = None
    tls: ssl.SSLContext | None = None
    keepalive: int = 30  # seconds
    timeout: float = 10.0  # for the connection and each acknowledgement awaited
    clean: bool = False  # True: the broker discards the session and its subscriptions
    max_packet: int = BrokerConfig.max_packet_size  # larger ones are skipped: the broker's limit


class Subscriber(asyncio.Protocol):
    """One connection: ``await Subscriber.connect(...)``, then ``subscribe``, ``ack``, and
    ``run`` until it ends."""

    def __init__(self, session: Session, on_publish: Callable[[list[Publish]], None]) -> None:
        loop = asyncio.get_running_loop()
        self.session = session
        self.on_publish = on_publish
        self.ended: asyncio.Future[str] = loop.create_future()  # why, once it has ended
        self.last_rx = loop.time()
        self._rx = mf.Receiver(session.max_packet)
        self._transport: asyncio.Transport | None = None
        self._waiting: dict[tuple[int, int], asyncio.Future[Packet]] = {}  # (type, pid)
        self._pid = 0

    @property
    def oversized(self) -> int:
        """Packets skipped for their size."""
        return self._rx.oversized

    @classmethod
    async def connect(
        cls, session: Session, on_publish: Callable[[list[Publish]], None]
    ) -> Subscriber:
        """Connect, send CONNECT (persistent session) and wait for the broker's CONNACK."""
        loop = asyncio.get_running_loop()
        sub = cls(session, on_publish)
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for returns the connection and
            # swallows a cancel that lands as it is made, and ingest then outlived shutdown
            async with asyncio.timeout(session.timeout):
                await loop.create_connection(
                    lambda: sub, session.host, session.port, ssl=session.tls
                )
        except (OSError, TimeoutError) as e:
            raise SessionEnded(f"cannot connect to {session.host}:{session.port}: {e!r}") from e
        hello = mf.send_connect(
            session.client_id, session.keepalive, session.clean, session.username, session.password
        )
        try:
            p = await sub._request(hello, (mf.CONNACK, 0))
        except SessionEnded:
            sub.close()
            raise
        code = p[4][1]  # after the session-present flag
        if code:
            why = mf.CONNACK_CODES[code] if code < len(mf.CONNACK_CODES) else f"code {code}"
            sub.close(f"connection refused: {why}")
            raise SessionEnded(sub.ended.result())
        return sub

    # ---- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self.last_rx = asyncio.get_running_loop().time()
        publishes: list[Publish] = []
        keep = publishes.append
        try:
            for p in self._rx.receive_data(data):
                if p[0] == mf.PUBLISH and p[1] & 6 != 4:  # QoS 0 or 1, as subscribed
                    keep(p)
                else:
                    self._answer(p)
        except mf.MQTTProtocolError as e:
            self.close(f"the broker sent what is not MQTT 3.1.1: {e}")
            return  # not acknowledged: the broker sends them again
        if publishes:
            self.on_publish(publishes)

    def connection_lost(self, exc: Exception | None) -> None:
        self.close(f"connection lost: {exc}" if exc else "connection closed by the broker")

    def _answer(self, p: Packet) -> None:
        if p[0] == mf.PINGRESP:
            return
        waiter = self._waiting.pop((p[0], p[2]), None)
        if waiter is None:
            raise mf.MQTTProtocolError(f"unexpected packet type {p[0]} (packet id {p[2]})")
        if not waiter.done():
            waiter.set_result(p)

    # ---- requests --------------------------------------------------------------------------

    async def _request(self, packet: bytes, answer: tuple[int, int]) -> Packet:
        """Send ``packet`` and wait for the packet that answers it (type, packet id)."""
        if self.ended.done():
            raise SessionEnded(self.ended.result())
        waiter: asyncio.Future[Packet] = asyncio.get_running_loop().create_future()
        self._waiting[answer] = waiter
        self.write(packet)
        either: set[asyncio.Future[Any]] = {waiter, self.ended}
        done, _ = await asyncio.wait(
            either, timeout=self.session.timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if waiter in done:
            return waiter.result()
        self._waiting.pop(answer, None)
        waiter.cancel()
        if not self.ended.done():
            self.close(f"no answer from the broker in {self.session.timeout:g} s")
        raise SessionEnded(self.ended.result())

    def _next_pid(self) -> int:
        self._pid = self._pid % 65535 + 1
        return self._pid

    async def subscribe(self, filters: list[tuple[str, int]]) -> None:
        """Subscribe; a filter the broker refuses ends the connection (SessionEnded)."""
        pid = self._next_pid()
        p = await self._request(mf.send_subscribe(pid, filters), (mf.SUBACK, pid))
        refused = [f for (f, _), code in zip(filters, p[4], strict=False) if code == 0x80]
        if refused or len(p[4]) != len(filters):
            self.close(f"subscription refused by the broker: {refused or p[4]!r}")
            raise SessionEnded(self.ended.result())

    async def unsubscribe(self, filters: list[str]) -> None:
        pid = self._next_pid()
        await self._request(mf.send_unsubscribe(pid, filters), (mf.UNSUBACK, pid))

    def write(self, data: bytes) -> None:
        """Write, unless the connection has ended (what was not acknowledged comes again)."""
        t = self._transport
        if data and t is not None and not t.is_closing():
            t.write(data)

    def ack(self, pids: Iterable[int], before: bytes = b"") -> None:
        """The PUBACKs of ``pids``, after the packets in ``before``, in one write."""
        self.write(before + b"".join([_PUBACKS[pid] for pid in pids]))

    async def run(self) -> None:
        """Keep the connection alive until it ends; then raise SessionEnded saying why."""
        loop = asyncio.get_running_loop()
        keepalive = self.session.keepalive
        while not self.ended.done():
            await asyncio.wait({self.ended}, timeout=keepalive / 2)
            if self.ended.done():
                break
            if loop.time() - self.last_rx > keepalive * 1.5:
                self.close(f"nothing from the broker in {keepalive * 1.5:g} s")
            else:
                self.write(mf.PINGREQ_PACKET)
        raise SessionEnded(self.ended.result())

    def close(self, why: str = "closed by the controller") -> None:
        """End the connection (the first reason given is kept)."""
        if not self.ended.done():
            self.ended.set_result(why)
        for waiter in self._waiting.values():
            waiter.cancel()
        self._waiting.clear()
        if self._transport is not None:
            self._transport.abort()
