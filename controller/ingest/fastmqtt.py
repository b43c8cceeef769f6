"""A faster receive path and batched acknowledgements for the paho-mqtt client under aiomqtt.

Why: once decoding and storing were cheap, paho's receive path was the largest cost of ingest:
three or four ``recv()`` calls and an event-loop turn per packet, an ``MQTTMessage`` and a log
line per message, and a ``send()`` per PUBACK (figures: docs/performance.md, "Ingest").

What: ``install(paho_client, on_publish)`` replaces, on that one client instance, ``loop_read``
(one large ``recv()``, then every complete packet taken out: MQTT 3.1.1 QoS 0/1 publishes go
straight to ``on_publish``, every other packet to paho's own handler as paho would; a partial
packet waits for the next read) and adds ``ack_many(mids)`` (a committed batch's PUBACKs, after
its ``stored`` confirmations, queued as one write through paho's writer). aiomqtt still owns
connecting, subscribing, keepalive, TLS and disconnect detection.

Checked against paho-mqtt 2.2: ``tests/test_ingest.py`` runs the worker against a real broker
and feeds this parser packets cut at every byte, so a paho upgrade that renames these internals
fails the tests instead of losing messages quietly.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterable
from typing import Any, cast

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.exception import MalformedPacket

PUBLISH = 0x30
PUBACK = 0x40
READ_SIZE = 1 << 18
# one PUBACK per mid: fixed header (type, remaining length 2) and the mid, big-endian
_PUBACKS = [bytes((PUBACK, 2, mid >> 8, mid & 0xFF)) for mid in range(65536)]

OnPublish = Callable[[str, bytes, int, int, bool], None]


def _fresh_in_packet() -> Any:  # paho's private _InPacket TypedDict
    return {
        "command": 0,
        "have_remaining": 0,
        "remaining_count": [],
        "remaining_mult": 1,
        "remaining_length": 0,
        "packet": bytearray(b""),
        "to_process": 0,
        "pos": 0,
    }


class FastPath:
    def __init__(self, client: paho.Client, on_publish: OnPublish) -> None:
        self._c = client
        self._on_publish = on_publish
        self._buf = bytearray()
        self._sock: Any = None
        # v3.1.1 publishes are parsed here; MQTT 5 ones (properties) go to paho
        self._fast = client.protocol != paho.MQTTv5

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:  # paho's signature
        c = self._c
        sock = c._sock
        if sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        if sock is not self._sock:  # a new connection: what was buffered belongs to the old one
            self._sock = sock
            self._buf.clear()
        try:
            data = sock.recv(READ_SIZE)
        except (BlockingIOError, ssl.SSLWantReadError):
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        except ssl.SSLWantWriteError:
            c._call_socket_register_write()
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        except OSError:
            return c._loop_rc_handle(MQTTErrorCode.MQTT_ERR_CONN_LOST)
        if not data:
            return c._loop_rc_handle(MQTTErrorCode.MQTT_ERR_CONN_LOST)
        with c._msgtime_mutex:  # keepalive: the broker is alive (paho does this per read too)
            c._last_bytes_received = paho.time_func()
        buf = self._buf
        if buf:
            buf += data
            view: bytes | bytearray = buf
        else:
            view = data
        rc = self._parse(view)
        if rc > 0:
            self._buf.clear()
            return c._loop_rc_handle(rc)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _parse(self, buf: bytes | bytearray) -> MQTTErrorCode:
        """Take every complete packet out of ``buf``; keep the rest in ``self._buf``."""
        c = self._c
        on_publish = self._on_publish
        fast = self._fast
        n = len(buf)
        pos = 0
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        while n - pos >= 2:
            first = buf[pos]
            # remaining length: up to four bytes, seven bits each, least significant first
            i = pos + 1
            length = 0
            shift = 0
            complete = False
            while i < n:
                b = buf[i]
                i += 1
                length |= (b & 127) << shift
                if not b & 128:
                    complete = True
                    break
                shift += 7
                if shift >= 28:
                    return MQTTErrorCode.MQTT_ERR_PROTOCOL
            if not complete:
                break
            end = i + length
            if end > n:
                break
            qos = (first >> 1) & 3
            if fast and first & 0xF0 == PUBLISH and qos < 2:
                if length < 2:
                    return MQTTErrorCode.MQTT_ERR_PROTOCOL
                tlen = (buf[i] << 8) | buf[i + 1]
                j = i + 2 + tlen
                if j + (2 if qos else 0) > end:  # as paho: a malformed packet ends the connection
                    return MQTTErrorCode.MQTT_ERR_PROTOCOL
                topic = bytes(buf[i + 2 : j]).decode("utf-8", "replace")
                if qos:
                    mid = (buf[j] << 8) | buf[j + 1]
                    j += 2
                else:
                    mid = 0
                on_publish(topic, bytes(buf[j:end]), mid, qos, bool(first & 1))
            else:
                rc = self._paho_handle(first, bytes(buf[pos + 1 : i]), length, buf[i:end])
                if rc > 0:
                    return rc
                if c._sock is not self._sock:  # paho closed or replaced the connection
                    self._buf = bytearray()
                    return rc
            pos = end
        if pos < n:
            self._buf = bytearray(buf[pos:])
        else:
            self._buf = bytearray()
        return rc

    def _paho_handle(
        self, first: int, rl: bytes, length: int, body: bytes | bytearray
    ) -> MQTTErrorCode:
        """One packet through paho's own handling, as its ``_packet_read`` would do it."""
        c = self._c
        c._in_packet = cast(
            Any,
            {
                "command": first,
                "have_remaining": 1,
                "remaining_count": list(rl),
                "remaining_mult": 128 ** len(rl),
                "remaining_length": length,
                "packet": bytearray(body),
                "to_process": 0,
                "pos": 0,
            },
        )
        try:
            rc = c._packet_handle()
        except MalformedPacket:
            rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
        finally:
            c._in_packet = _fresh_in_packet()
        return rc

    def ack_many(self, mids: Iterable[int], before: bytes = b"") -> None:
        """Queue the PUBACKs of ``mids`` as one write (see the module docstring), after the
        packets in ``before`` (QoS 0 publishes from ``publish_packet``)."""
        data = before + b"".join([_PUBACKS[m] for m in mids])
        if data and self._c._sock is not None:
            self._c._packet_queue(PUBACK, data, 0, 0)

    def publish_packet(self, topic: str, payload: bytes) -> bytes:
        """A QoS 0 PUBLISH packet for this client's protocol version (no retain, no DUP)."""
        t = topic.encode()
        props = b"\x00" if self._c.protocol == paho.MQTTv5 else b""  # no properties
        body = len(t).to_bytes(2, "big") + t + props + payload
        n = len(body)
        rl = bytearray()
        while True:
            byte = n & 127
            n >>= 7
            rl.append(byte | 128 if n else byte)
            if not n:
                break
        return bytes((PUBLISH,)) + bytes(rl) + body


def install(client: paho.Client, on_publish: OnPublish) -> FastPath:
    """Switch ``client`` (paho, under aiomqtt) to the fast receive path; see the docstring."""
    fast = FastPath(client, on_publish)
    # an instance attribute shadows the method: aiomqtt calls client.loop_read()
    setattr(client, "loop_read", fast.loop_read)  # noqa: B010 (mypy: assigning to a method)
    return fast
