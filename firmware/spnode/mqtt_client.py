"""A resilient asyncio MQTT 3.1.1 client for the node, running unchanged on MicroPython and CPython.

Why our own: aiomqtt and paho-mqtt do not run on MicroPython; micropython-lib's umqtt blocks,
which would stall light control; Peter Hinch's mqtt_as is the model for what must be survived
(Wi-Fi and broker outages, QoS 1 resends, keepalive, first connect failing after a power cut) but
mixes Wi-Fi handling into one large module. This client only speaks MQTT over a stream that
`asyncio.open_connection` gives; the board layer brings the network up. The simulator runs this
same code on CPython, so its virtual poles connect exactly as nodes do.

Use::

    client = MQTTClient("n1", "10.0.0.2", will=(topic, b'{"status":"offline"}', 1, True),
                        on_message=handle, on_connect=send_birth)
    client.subscribe("streetpole/v1/p1/n1/cmd", 1)
    asyncio.create_task(client.run())           # connects, and reconnects, forever
    await client.publish(topic, payload, qos=1)  # True once the broker has it

Design choices:
- ``publish`` never waits for a connection: when offline it raises NotConnected at once, so the
  caller keeps the data in its store-and-forward buffer and light control is never held up.
  While connected, a QoS 1 publish waits for PUBACK, resending with DUP on timeout, and raises
  NotConnected if the connection drops first: the caller sends it again later (the receiver
  deduplicates), which is what QoS 1 promises.
- Reconnect uses exponential backoff with jitter, so a street of nodes does not hammer a broker
  that comes back after an outage all in the same second.
- Every wait has a timeout; a silent connection is declared dead after 1.5 keepalive periods.
- TLS with a context that verifies (spnode.tlsctx: the CA from node.json) and the name the
  broker's certificate must carry (never ``ssl=True``: on MicroPython that trusts anyone). A
  certificate the node refuses is printed, once while it repeats; nothing is sent to that broker.
"""

import asyncio
import random

from protocols import mqtt_framing as mf
from spnode.compat import MICROPYTHON, const, ticks_diff, ticks_ms

# What one read may take (a transient allocation); a longer packet is put together from several.
_READ_SIZE = const(256)


class NotConnected(Exception):
    """No connection to the broker now: keep the message and try again later."""


class ConnectRefused(Exception):
    """The broker answered CONNACK with a refusal (bad credentials, not authorised, ...)."""


class MQTTClient:
    def __init__(
        self,
        client_id,
        host,
        port=1883,
        username=None,
        password=None,
        keepalive=60,
        ssl=None,
        server_hostname=None,
        will=None,
        clean_session=True,
        on_message=None,
        on_connect=None,
        ack_timeout_ms=5000,
        resends=3,
        max_packet=16384,
        backoff_ms=(500, 60000),
    ):
        self.client_id = client_id
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.keepalive = keepalive
        self.ssl = ssl  # an SSL context that verifies (spnode.tlsctx), or None
        self.server_hostname = server_hostname  # the name the broker's certificate carries
        self.will = will
        self.clean_session = clean_session
        self.on_message = on_message
        self.on_connect = on_connect
        self.ack_timeout_ms = ack_timeout_ms
        self.resends = resends
        self.backoff_ms = backoff_ms
        self.up = asyncio.Event()  # set while connected
        self.connects = 0  # successful connects so far
        self.failures = 0  # failed connection attempts in a row
        self.last_error = None  # why the last connection failed or ended
        self._subs = {}  # topic filter -> qos, restored on every connect
        self._reader = None
        self._writer = None
        self._rx = mf.Receiver(max_packet)  # oversized: packets skipped for their size
        self._inbox = []  # packets of the last read not handled yet
        self._lock = asyncio.Lock()
        self._pid = 0
        self._acks = {}  # pid -> [asyncio.Event, acked]
        self._last_rx = 0
        self._last_tx = 0
        self._stop = False
        self._tasks = set()  # keep references to background tasks until they finish

    @property
    def connected(self):
        return self._writer is not None

    # ---- public API -------------------------------------------------------------------------

    def subscribe(self, topics, qos=1):
        """Subscribe to a topic filter, or a list of them in one packet, now if connected, and
        again on every reconnect. (A packet and a task per filter, eight neighbours at once,
        ran a 96 KiB node out of heap.)"""
        if isinstance(topics, str):
            topics = (topics,)
        filters = []
        for t in topics:
            self._subs[t] = qos
            filters.append((t, qos))
        if self.connected and filters:
            self._spawn(self._send_quiet(mf.send_subscribe(self._next_pid(), filters)))

    def unsubscribe(self, topics):
        """Forget topic filters: unsubscribe now if connected, and not again on a reconnect."""
        gone = [t for t in topics if self._subs.pop(t, None) is not None]
        if self.connected and gone:
            self._spawn(self._send_quiet(mf.send_unsubscribe(self._next_pid(), gone)))

    async def publish(self, topic, payload, qos=0, retain=False):
        """Send a message; with QoS 1 return True once the broker acknowledged it."""
        if not self.connected:
            raise NotConnected("offline")
        if not qos:
            await self._send(mf.send_publish(topic, payload, 0, retain))
            return True
        pid = self._next_pid()
        waiter = [asyncio.Event(), False]
        self._acks[pid] = waiter
        try:
            for attempt in range(self.resends + 1):
                await self._send(mf.send_publish(topic, payload, 1, retain, attempt > 0, pid))
                try:
                    await asyncio.wait_for(waiter[0].wait(), self.ack_timeout_ms / 1000)
                except asyncio.TimeoutError:
                    if not self.connected:
                        raise NotConnected("connection lost before PUBACK") from None
                    continue
                if waiter[1]:
                    return True
                raise NotConnected("connection lost before PUBACK")
            await self._drop_connection("no PUBACK after %d resends" % self.resends)
            raise NotConnected("no PUBACK")
        finally:
            self._acks.pop(pid, None)

    async def run(self):
        """Connect, serve, and reconnect with backoff until stop()."""
        delay = self.backoff_ms[0]
        while not self._stop:
            try:
                await self._connect()
            except Exception as e:  # any failure to connect: wait, then try again
                self.failures += 1
                why = repr(e)
                if isinstance(e, ValueError) and self.ssl is not None:  # certificate refused
                    why = "mqtt: certificate of %s:%d refused: %s" % (
                        self.host, self.port, " ".join(str(e).split()))  # fmt: skip
                    if why != self.last_error:  # on a technician's console; once in a row
                        print(why)
                self.last_error = why
                await self._close()
                jitter = random.getrandbits(16) * delay // 131072  # up to +50%
                await asyncio.sleep((delay + jitter) / 1000)
                delay = min(delay * 2, self.backoff_ms[1])
                continue
            delay = self.backoff_ms[0]
            self.failures = 0
            try:
                await self._serve()
            except Exception as e:
                self.last_error = repr(e)
            await self._close()

    async def stop(self):
        """Disconnect cleanly (no last will) and end run()."""
        self._stop = True
        if self.connected:
            try:
                await self._send(mf.DISCONNECT_PACKET)
            except Exception:
                pass
        await self._close()

    # ---- connection -------------------------------------------------------------------------

    async def _connect(self):
        if self.ssl is not None:
            conn = asyncio.open_connection(
                self.host,
                self.port,
                ssl=self.ssl,
                server_hostname=self.server_hostname or self.host,
            )
        else:
            conn = asyncio.open_connection(self.host, self.port)
        self._reader, writer = await asyncio.wait_for(conn, 10)
        writer.write(
            mf.send_connect(
                self.client_id,
                self.keepalive,
                self.clean_session,
                self.username,
                self.password,
                self.will,
            )
        )
        await writer.drain()
        pkt = await asyncio.wait_for(self._read_packet(), 10)
        if pkt[0] != mf.CONNACK:
            raise mf.MQTTProtocolError("expected CONNACK")
        code = pkt[4][1]
        if code:
            self._writer = writer
            raise ConnectRefused(
                mf.CONNACK_CODES[code] if code < len(mf.CONNACK_CODES) else "code %d" % code
            )
        self._writer = writer
        self._last_rx = self._last_tx = ticks_ms()
        if self._subs:
            filters = [(t, q) for t, q in self._subs.items()]
            await self._send(mf.send_subscribe(self._next_pid(), filters))
        self.connects += 1
        self.up.set()
        if self.on_connect is not None:
            self._spawn(self._call_on_connect())

    async def _call_on_connect(self):
        try:
            result = self.on_connect(self)
            if result is not None and hasattr(result, "send"):  # a coroutine
                await result
        except Exception as e:
            self.last_error = repr(e)

    async def _serve(self):
        pinger = asyncio.create_task(self._keepalive())
        try:
            while self._writer is not None:
                pkt = await self._read_packet()
                ptype = pkt[0]
                if ptype == mf.PUBLISH:
                    await self._on_publish(pkt)
                elif ptype == mf.PUBACK:
                    waiter = self._acks.get(pkt[2])
                    if waiter is not None:
                        waiter[1] = True
                        waiter[0].set()
                elif ptype not in (mf.SUBACK, mf.UNSUBACK, mf.PINGRESP):
                    raise mf.MQTTProtocolError("unexpected packet type %d" % ptype)
        finally:
            pinger.cancel()

    async def _on_publish(self, pkt):
        _, flags, pid, topic, payload = pkt
        if self.on_message is not None:
            try:
                self.on_message(topic, payload, bool(flags & 1))
            except Exception as e:  # a bad handler must not kill the connection
                self.last_error = repr(e)
        if pid:  # QoS 1 (a broker sends no QoS 2 to a QoS 1 subscriber)
            await self._send(mf.send_puback(pid))

    async def _keepalive(self):
        period = self.keepalive * 1000
        while self._writer is not None:
            await asyncio.sleep(min(self.keepalive / 4, 5))
            now = ticks_ms()
            if ticks_diff(now, self._last_rx) > period * 3 // 2:
                await self._drop_connection("keepalive timeout")
                return
            if ticks_diff(now, self._last_tx) > period // 2:
                await self._send_quiet(mf.PINGREQ_PACKET)

    async def _read_packet(self):
        """The next packet from the broker: from the last read, or from the next one."""
        inbox = self._inbox
        while not inbox:
            data = await self._reader.read(_READ_SIZE)
            if not data:
                raise EOFError("connection closed by the broker")
            self._last_rx = ticks_ms()
            inbox.extend(self._rx.receive_data(data))
        return inbox.pop(0)

    async def _send(self, data):
        writer = self._writer
        if writer is None:
            raise NotConnected("offline")
        async with self._lock:
            try:
                writer.write(data)
                await asyncio.wait_for(writer.drain(), 10)
            except Exception as e:
                await self._drop_connection(repr(e))
                raise NotConnected("send failed") from None
        self._last_tx = ticks_ms()

    async def _send_quiet(self, data):
        """Send a SUBSCRIBE or PINGREQ from a task of its own. Failing to send one (a
        MemoryError, say) drops the connection: the reconnect subscribes to everything again,
        where a subscription lost quietly would stay lost until the next one."""
        try:
            await self._send(data)
        except NotConnected:
            pass
        except Exception as e:
            await self._drop_connection(repr(e))

    async def _drop_connection(self, reason):
        self.last_error = reason
        await self._close()

    async def _close(self):
        self.up.clear()
        self._rx = mf.Receiver(self._rx.max_packet)  # what the last connection left is lost
        self._inbox = []
        writer = self._writer
        self._writer = None
        self._reader = None
        for waiter in self._acks.values():
            waiter[0].set()  # wake publishers: acked stays False
        if writer is not None:
            try:
                writer.close()
                if not MICROPYTHON:
                    await asyncio.wait_for(writer.wait_closed(), 2)
                else:
                    await writer.wait_closed()
            except Exception:
                pass

    def _spawn(self, coro):
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        for done in [t for t in self._tasks if t.done()]:
            self._tasks.discard(done)

    def _next_pid(self):
        self._pid = self._pid % 65535 + 1
        return self._pid
