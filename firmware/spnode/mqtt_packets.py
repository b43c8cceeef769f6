"""MQTT 3.1.1 packets, sans-IO: build packets as bytes, parse received packet bodies.

Used by spnode.mqtt_client on the node and, unchanged, in the simulator. Only what a node needs:
CONNECT/CONNACK, PUBLISH/PUBACK (QoS 0 and 1), SUBSCRIBE/SUBACK, UNSUBSCRIBE/UNSUBACK,
PINGREQ/PINGRESP, DISCONNECT. Example::

    pkt = connect(b"n1", keepalive=60, will=(b"t/state", b'{"status":"offline"}', 1, True))
    ptype, flags, body = split(pkt)   # a received packet, after read_packet()
"""

from spnode.compat import const

CONNECT = const(1)
CONNACK = const(2)
PUBLISH = const(3)
PUBACK = const(4)
SUBSCRIBE = const(8)
SUBACK = const(9)
UNSUBSCRIBE = const(10)
UNSUBACK = const(11)
PINGREQ = const(12)
PINGRESP = const(13)
DISCONNECT = const(14)

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
    """The peer sent something that is not MQTT 3.1.1 as we speak it."""


def encode_length(n):
    """Remaining length as MQTT's variable-length integer (1 to 4 bytes)."""
    if n < 0 or n > 268435455:
        raise MQTTProtocolError("remaining length out of range")
    out = bytearray()
    while True:
        digit = n & 0x7F
        n >>= 7
        if n:
            out.append(digit | 0x80)
        else:
            out.append(digit)
            return bytes(out)


def decode_length(data, offset=0):
    """(length, number of bytes used) from a variable-length integer; None if incomplete."""
    value = 0
    shift = 0
    for i in range(4):
        if offset + i >= len(data):
            return None
        byte = data[offset + i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i + 1
        shift += 7
    raise MQTTProtocolError("malformed remaining length")


def _str(s):
    if isinstance(s, str):
        s = s.encode()
    if len(s) > 65535:
        raise MQTTProtocolError("string longer than 65535 bytes")
    return len(s).to_bytes(2, "big") + s


def _packet(first, body):
    return bytes([first]) + encode_length(len(body)) + body


def connect(client_id, keepalive=60, clean=True, username=None, password=None, will=None):
    """CONNECT; ``will`` is (topic, payload, qos, retain) or None."""
    flags = 0x02 if clean else 0
    payload = _str(client_id)
    if will is not None:
        topic, message, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += _str(topic) + _str(message)
    if username is not None:
        flags |= 0x80
        payload += _str(username)
        if password is not None:
            flags |= 0x40
            payload += _str(password)
    body = b"\x00\x04MQTT\x04" + bytes([flags]) + keepalive.to_bytes(2, "big") + payload
    return _packet(0x10, body)


def publish(topic, payload, qos=0, retain=False, dup=False, pid=0):
    first = 0x30 | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    head = _str(topic)
    if qos:
        if not 0 < pid < 65536:
            raise MQTTProtocolError("QoS 1 needs a packet id 1..65535")
        head += pid.to_bytes(2, "big")
    return bytes([first]) + encode_length(len(head) + len(payload)) + head + bytes(payload)


def puback(pid):
    return b"\x40\x02" + pid.to_bytes(2, "big")


def subscribe(pid, filters):
    """SUBSCRIBE for [(topic filter, qos), ...]."""
    body = pid.to_bytes(2, "big")
    for topic, qos in filters:
        body += _str(topic) + bytes([qos])
    return _packet(0x82, body)


def unsubscribe(pid, topics):
    body = pid.to_bytes(2, "big")
    for topic in topics:
        body += _str(topic)
    return _packet(0xA2, body)


def split(packet):
    """(type, flags, body) of one whole packet given as bytes."""
    length, used = decode_length(packet, 1)
    if 1 + used + length != len(packet):
        raise MQTTProtocolError("packet length does not match its header")
    return packet[0] >> 4, packet[0] & 0x0F, packet[1 + used :]


def parse_connack(body):
    """(session present, return code)."""
    if len(body) != 2:
        raise MQTTProtocolError("CONNACK must be 2 bytes")
    return bool(body[0] & 1), body[1]


def parse_publish(flags, body):
    """(topic str, payload bytes, qos, retain, dup, pid) of a received PUBLISH."""
    qos = (flags >> 1) & 3
    if qos == 3:
        raise MQTTProtocolError("PUBLISH with QoS 3")
    if len(body) < 2:
        raise MQTTProtocolError("PUBLISH too short")
    n = (body[0] << 8) | body[1]
    end = 2 + n
    if end > len(body):
        raise MQTTProtocolError("PUBLISH topic runs past the packet")
    topic = bytes(body[2:end]).decode()
    pid = 0
    if qos:
        if end + 2 > len(body):
            raise MQTTProtocolError("PUBLISH packet id missing")
        pid = (body[end] << 8) | body[end + 1]
        end += 2
    return topic, bytes(body[end:]), qos, bool(flags & 1), bool(flags & 8), pid


def parse_pid(body):
    """Packet id of PUBACK / UNSUBACK (and the first two bytes of SUBACK)."""
    if len(body) < 2:
        raise MQTTProtocolError("packet id missing")
    return (body[0] << 8) | body[1]


def parse_suback(body):
    """(pid, [granted qos or 0x80 for failure, ...])."""
    return parse_pid(body), list(body[2:])
