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
A CONNACK's payload is its two bytes: the session-present flag and the return code
(``CONNACK_CODES`` names codes 0 to 5). A packet larger than ``max_packet`` (whole, header
included) is skipped as it arrives, never held, and counted in ``oversized``: a node cannot hold
what a broker may send. ``held`` is the number of bytes kept of an incomplete packet. Anything
that is not MQTT 3.1.1 raises MQTTProtocolError, after which the stream is lost: close the
connection (MQTT says so too). A new connection takes a new Receiver.

Sending: ``send_connect``, ``send_publish``, ``send_puback``, ``send_subscribe``,
``send_unsubscribe`` return the packet's bytes; ``PINGREQ_PACKET`` and ``DISCONNECT_PACKET`` are
constant.

Written for the node's heap, where every function and name costs RAM: few functions, the packet
types only the node and the controller look at named.
"""

CONNACK = 2
PUBLISH = 3
PUBACK = 4
SUBACK = 9
UNSUBACK = 11
PINGRESP = 13

# CONNACK's return codes 0 to 5
CONNACK_CODES = (
    "accepted",
    "unacceptable protocol version",
    "identifier rejected",
    "server unavailable",
    "bad user name or password",
    "not authorised",
)

PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"


class MQTTProtocolError(Exception):
    """The peer sent something that is not MQTT 3.1.1 (the message says what)."""


class Receiver:
    """Cuts a received byte stream into packets (see the module docstring)."""

    def __init__(self, max_packet=16384):
        self.max_packet = max_packet
        self.oversized = 0  # packets skipped for their size
        self.held = 0  # bytes received of an incomplete packet
        self._part = None  # that packet: its first bytes (bytes), or all its room (bytearray)
        self._skip = 0  # bytes of an oversized packet still to come and to discard

    def receive_data(self, data):
        """Yield the packets that ``data`` completes, in order; keep an incomplete one.

        A generator: iterate it to the end before the next call."""
        if self._skip:
            n = min(self._skip, len(data))
            self._skip -= n
            data = data[n:]
        whole = None  # a packet held from earlier reads that data completes
        part = self._part
        if part is not None:
            if isinstance(part, bytearray):  # its room is allocated: fill it
                have = self.held
                n = min(len(part) - have, len(data))
                part[have : have + n] = memoryview(data)[:n]
                self.held = have = have + n
                if have < len(part):
                    return
                whole = part
                data = data[n:]  # bytes: quicker to index than a memoryview
            else:  # a few bytes of a header: join them to what follows
                data = part + bytes(data)
            self._part = None
            self.held = 0
        max_packet = self.max_packet
        for buf in (whole, data):
            if buf is None:
                continue
            n = len(buf)
            pos = 0
            total = 0  # of an incomplete packet at pos, once its header is in
            while pos < n:
                # remaining length: up to four bytes, seven bits each, least significant first
                i = pos + 1
                length = 0
                shift = 0
                while i < n:
                    b = buf[i]
                    i += 1
                    length |= (b & 127) << shift
                    if not b & 128:
                        break
                    shift += 7
                    if shift == 28:
                        raise MQTTProtocolError("remaining length longer than four bytes")
                else:
                    break  # the header is not complete
                end = i + length
                if end - pos > max_packet:
                    self.oversized += 1
                    if end > n:
                        self._skip = end - n
                        pos = n
                    else:
                        pos = end
                    continue
                if end > n:
                    total = end - pos
                    break
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
            if pos < n:  # keep the incomplete packet at buf[pos:]
                self.held = n - pos
                if total:  # its whole room at once, filled as it arrives
                    self._part = bytearray(total)
                    self._part[: n - pos] = memoryview(buf)[pos:]
                else:
                    self._part = bytes(buf[pos:])


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
    if ptype >= 12:  # PINGREQ, PINGRESP, DISCONNECT
        if n:
            raise MQTTProtocolError("packet type %d with a body" % ptype)
        return ptype, 0, 0, None, b""
    if ptype == 1:  # CONNECT
        return 1, 0, 0, None, bytes(buf[i:end])
    # every other type starts with a packet id
    if n < 2:
        raise MQTTProtocolError("packet type %d without its packet id" % ptype)
    if ptype in (8, 9, 10):  # SUBSCRIBE, SUBACK, UNSUBSCRIBE: topics or return codes follow
        if n < 3:
            raise MQTTProtocolError("packet type %d without a topic or return code" % ptype)
    elif n != 2:  # PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK: the packet id alone
        raise MQTTProtocolError("packet type %d of %d bytes, not 2" % (ptype, n))
    return ptype, 0, buf[i] << 8 | buf[i + 1], None, bytes(buf[i + 2 : end])


# ---- sending ----------------------------------------------------------------------------------


def encode_length(n):
    """A remaining length as MQTT's variable-length integer (1 to 4 bytes)."""
    if n < 0 or n > 268435455:  # four bytes of seven bits
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


def _packet(first, head, payload=b""):
    return bytes((first,)) + encode_length(len(head) + len(payload)) + head + payload


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
    head = b"\x00\x04MQTT\x04" + bytes((flags,)) + keepalive.to_bytes(2, "big")
    return _packet(0x10, head, payload)


def send_publish(topic, payload, qos=0, retain=False, dup=False, pid=0):
    """PUBLISH; QoS 1 needs a packet id (1 to 65535)."""
    head = _str(topic)
    if qos:
        if not 0 < pid < 65536:
            raise MQTTProtocolError("packet id %d not in 1..65535" % pid)
        head += pid.to_bytes(2, "big")
    return _packet(0x30 | (8 if dup else 0) | qos << 1 | (1 if retain else 0), head, payload)


def send_puback(pid):
    return b"\x40\x02" + pid.to_bytes(2, "big")


def send_subscribe(pid, filters):
    """SUBSCRIBE for [(topic filter, qos), ...]."""
    body = pid.to_bytes(2, "big")
    for topic, qos in filters:
        body += _str(topic) + bytes((qos,))
    return _packet(0x82, body)


def send_unsubscribe(pid, topics):
    body = pid.to_bytes(2, "big")
    for topic in topics:
        body += _str(topic)
    return _packet(0xA2, body)
