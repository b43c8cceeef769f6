"""MQTT 3.1.1 framing, sans-IO: bytes in, packets out; packets to send as bytes.

One module for the node's client (spnode.mqtt_client, on MicroPython and in the simulator) and
the controller's ingest subscriber (controller/ingest/subscriber.py). Why our own: paho-mqtt and
aiomqtt do not run on MicroPython, and their receive paths are not meant to be driven from
outside (ingest reached into their private names for speed); micropython-lib's umqtt reads
the socket itself. In the style of h11, this module does no I/O: the caller reads and writes.

Receiving::

    rx = Receiver(max_packet=16384)
    for ptype, flags, pid, topic, payload in rx.receive_data(data):   # any cut of the stream
        if ptype == PUBLISH: ...   # qos = flags >> 1 & 3, retain = flags & 1, dup = flags & 8

Every packet is the tuple ``(type, flags, packet id, topic, payload)``: the fixed header's type
and flags, the packet id where the packet has one (else 0), the topic of a PUBLISH (else None),
and the rest (a PUBLISH's message, a SUBACK's return codes, a CONNACK's two bytes; b"" if none).
A packet larger than ``max_packet`` (whole, header included) is skipped as it arrives, never
held, and counted in ``oversized``: a node cannot hold what a broker may send. Anything that is
not MQTT 3.1.1 raises MQTTProtocolError, after which the stream is lost: close the connection
(MQTT says so too) and call ``reset()`` for the next one.

Sending: ``send_connect``, ``send_publish``, ``send_puback``, ``send_subscribe``,
``send_unsubscribe`` return the packet's bytes; ``PINGREQ_PACKET`` and ``DISCONNECT_PACKET`` are
constant.
"""

CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
SUBSCRIBE = 8
SUBACK = 9
UNSUBSCRIBE = 10
UNSUBACK = 11
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14

MAX_REMAINING = 268435455  # four bytes of seven bits: the largest remaining length

CONNACK_CODES = {
    0: "accepted",
    1: "unacceptable protocol version",
    2: "identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}

PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"


class MQTTProtocolError(Exception):
    """The peer sent something that is not MQTT 3.1.1 (the message says what)."""


class Receiver:
    """Cuts a received byte stream into packets (see the module docstring)."""

    def __init__(self, max_packet=16384):
        self.max_packet = max_packet
        self.oversized = 0  # packets skipped for their size
        self._part = None  # an incomplete packet: its first bytes, or all its room once known
        self._have = 0  # bytes of it received
        self._total = 0  # its whole size once its header is in, else 0
        self._skip = 0  # bytes of an oversized packet still to come and to discard

    def reset(self):
        """Forget a partial packet: for a new connection."""
        self._part = None
        self._have = self._total = self._skip = 0

    def buffered(self):
        """Bytes held of a packet not complete yet."""
        return self._have

    def receive_data(self, data):
        """Yield the packets that ``data`` completes, in order; keep an incomplete one.

        A generator: iterate it to the end before the next call."""
        if self._skip:
            n = min(self._skip, len(data))
            self._skip -= n
            data = memoryview(data)[n:]
        whole = None  # a packet held from earlier reads that data completes
        part = self._part
        if part is not None:
            if self._total:  # its room is allocated: fill it
                have = self._have
                n = min(self._total - have, len(data))
                part[have : have + n] = memoryview(data)[:n]
                have += n
                if have < self._total:
                    self._have = have
                    return
                self.reset()
                whole = part
                data = memoryview(data)[n:]
            else:  # a few bytes of a header: join them to what follows
                data = part + bytes(data)
                self.reset()
        max_packet = self.max_packet
        for buf in (whole, data):
            if buf is None:
                continue
            n = len(buf)
            pos = 0
            while pos < n:
                # remaining length: up to four bytes, seven bits each, least significant first
                i = pos + 1
                length = 0
                shift = 0
                while True:
                    if i >= n:
                        self._keep(buf, pos, n, 0)
                        return
                    b = buf[i]
                    i += 1
                    length |= (b & 127) << shift
                    if not b & 128:
                        break
                    shift += 7
                    if shift == 28:
                        raise MQTTProtocolError("remaining length longer than four bytes")
                end = i + length
                if end - pos > max_packet:
                    self.oversized += 1
                    if end > n:
                        self._skip = end - n
                        return
                    pos = end
                    continue
                if end > n:
                    self._keep(buf, pos, n, end - pos)
                    return
                first = buf[pos]
                if first >> 4 == PUBLISH:  # here rather than in a function: ingest's pace
                    qos = first >> 1 & 3
                    if qos == 3:
                        raise MQTTProtocolError("PUBLISH with QoS 3")
                    if length < 2:
                        raise MQTTProtocolError("PUBLISH too short for its topic")
                    j = i + 2 + (buf[i] << 8 | buf[i + 1])
                    k = j + 2 if qos else j
                    if k > end:
                        raise MQTTProtocolError("PUBLISH topic runs past the packet")
                    pid = buf[j] << 8 | buf[j + 1] if qos else 0
                    if qos and not pid:
                        raise MQTTProtocolError("PUBLISH with QoS %d and packet id 0" % qos)
                    try:
                        topic = str(bytes(buf[i + 2 : j]), "utf-8")
                    except (UnicodeError, ValueError):
                        raise MQTTProtocolError("PUBLISH topic is not UTF-8") from None
                    yield PUBLISH, first & 15, pid, topic, bytes(buf[k:end])
                else:
                    yield _control(buf, i, end, first)
                pos = end

    def _keep(self, data, pos, n, total):
        """Keep the incomplete packet at ``data[pos:n]`` whose size is ``total`` (0: unknown)."""
        self._total = total
        self._have = n - pos
        if total:
            part = bytearray(total)  # its whole room at once, filled as it arrives
            part[: n - pos] = memoryview(data)[pos:n]
        else:
            part = bytes(data[pos:n])
        self._part = part


# The fixed-header flags every packet but PUBLISH must carry (MQTT 3.1.1 section 2.2.2).
_FLAGS = b"\x00\x00\x00\x00\x00\x00\x02\x00\x02\x00\x02\x00\x00\x00\x00\x00"


def _control(buf, i, end, first):
    """Any packet but PUBLISH, whose variable header is ``buf[i:end]``."""
    ptype = first >> 4
    if ptype in (0, 15):
        raise MQTTProtocolError("reserved packet type %d" % ptype)
    if first & 15 != _FLAGS[ptype]:
        raise MQTTProtocolError("packet type %d with flags %d" % (ptype, first & 15))
    n = end - i
    if ptype == CONNACK:
        if n != 2:
            raise MQTTProtocolError("CONNACK of %d bytes, not 2" % n)
        return CONNACK, 0, 0, None, bytes(buf[i:end])
    if ptype in (PINGREQ, PINGRESP, DISCONNECT):
        if n:
            raise MQTTProtocolError("packet type %d with a body" % ptype)
        return ptype, 0, 0, None, b""
    if ptype == CONNECT:
        return CONNECT, 0, 0, None, bytes(buf[i:end])
    # every other type starts with a packet id
    if n < 2:
        raise MQTTProtocolError("packet type %d without its packet id" % ptype)
    pid = buf[i] << 8 | buf[i + 1]
    if ptype in (SUBACK, SUBSCRIBE, UNSUBSCRIBE):
        if n < 3:
            raise MQTTProtocolError("packet type %d without a topic or return code" % ptype)
    elif n != 2:  # PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK: the packet id alone
        raise MQTTProtocolError("packet type %d of %d bytes, not 2" % (ptype, n))
    return ptype, 0, pid, None, bytes(buf[i + 2 : end])


def parse_connack(payload):
    """(session present, return code) of a CONNACK's two bytes; CONNACK_CODES says what."""
    return bool(payload[0] & 1), payload[1]


# ---- sending ----------------------------------------------------------------------------------


def encode_length(n):
    """A remaining length as MQTT's variable-length integer (1 to 4 bytes)."""
    if n < 0 or n > MAX_REMAINING:
        raise MQTTProtocolError("remaining length %d out of range" % n)
    out = bytearray()
    while True:
        digit = n & 127
        n >>= 7
        if n:
            out.append(digit | 128)
        else:
            out.append(digit)
            return bytes(out)


def _str(s):
    if isinstance(s, str):
        s = s.encode()
    if len(s) > 65535:
        raise MQTTProtocolError("string longer than 65535 bytes")
    return len(s).to_bytes(2, "big") + s


def _pid(pid):
    if not 0 < pid < 65536:
        raise MQTTProtocolError("packet id %d not in 1..65535" % pid)
    return pid.to_bytes(2, "big")


def _packet_bytes(first, body):
    return bytes((first,)) + encode_length(len(body)) + body


def send_connect(client_id, keepalive=60, clean=True, username=None, password=None, will=None):
    """CONNECT; ``will`` is (topic, payload, qos, retain) or None."""
    flags = 2 if clean else 0
    payload = _str(client_id)
    if will is not None:
        topic, message, qos, retain = will
        flags |= 4 | qos << 3 | (32 if retain else 0)
        payload += _str(topic) + _str(message)
    if username is not None:
        flags |= 128
        payload += _str(username)
        if password is not None:
            flags |= 64
            payload += _str(password)
    body = b"\x00\x04MQTT\x04" + bytes((flags,)) + keepalive.to_bytes(2, "big") + payload
    return _packet_bytes(0x10, body)


def send_publish(topic, payload, qos=0, retain=False, dup=False, pid=0):
    """PUBLISH; QoS 1 needs a packet id."""
    head = _str(topic)
    if qos:
        head += _pid(pid)
    first = 0x30 | (8 if dup else 0) | qos << 1 | (1 if retain else 0)
    return bytes((first,)) + encode_length(len(head) + len(payload)) + head + bytes(payload)


def send_puback(pid):
    return b"\x40\x02" + _pid(pid)


def send_subscribe(pid, filters):
    """SUBSCRIBE for [(topic filter, qos), ...]."""
    body = _pid(pid)
    for topic, qos in filters:
        body += _str(topic) + bytes((qos,))
    return _packet_bytes(0x82, body)


def send_unsubscribe(pid, topics):
    body = _pid(pid)
    for topic in topics:
        body += _str(topic)
    return _packet_bytes(0xA2, body)
