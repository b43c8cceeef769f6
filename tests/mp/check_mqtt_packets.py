"""Exact-byte checks of spnode.mqtt_packets; runs on MicroPython and CPython, prints OK."""

from spnode import mqtt_packets as pk

# CONNECT, MQTT 3.1.1 section 3.1: "MQTT" level 4, flags, keepalive, client id
assert pk.connect(b"n1", keepalive=60) == b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02n1"
c = pk.connect("n1", 30, False, "u", "p", (b"t", b"off", 1, True))
# flags: user 0x80 | password 0x40 | will retain 0x20 | will qos1 0x08 | will 0x04 = 0xEC
assert c[9] == 0xEC, c
assert c.endswith(b"\x00\x01t\x00\x03off\x00\x01u\x00\x01p")
# PUBLISH QoS 1 retained, pid 10; with DUP
assert pk.publish("a/b", b"hi", 1, True, False, 10) == b"\x33\x09\x00\x03a/b\x00\x0ahi"
assert pk.publish("a/b", b"hi", 1, False, True, 10)[0] == 0x3A
assert pk.publish("a/b", b"", 0) == b"\x30\x05\x00\x03a/b"
assert pk.puback(258) == b"\x40\x02\x01\x02"
assert pk.subscribe(1, [("a/+", 1)]) == b"\x82\x08\x00\x01\x00\x03a/+\x01"
assert pk.unsubscribe(2, ["a"]) == b"\xa2\x05\x00\x02\x00\x01a"
# remaining length edges (section 2.2.3)
for n, enc in (
    (0, b"\x00"),
    (127, b"\x7f"),
    (128, b"\x80\x01"),
    (16383, b"\xff\x7f"),
    (16384, b"\x80\x80\x01"),
    (268435455, b"\xff\xff\xff\x7f"),
):
    assert pk.encode_length(n) == enc, n
    assert pk.decode_length(enc) == (n, len(enc)), n
assert pk.decode_length(b"\x80") is None  # incomplete
try:
    pk.decode_length(b"\xff\xff\xff\xff\x01")
    raise AssertionError("5-byte length accepted")
except pk.MQTTProtocolError:
    pass
# parsing received packets
ptype, flags, body = pk.split(pk.publish("x/y", b"payload", 1, True, False, 7))
assert ptype == pk.PUBLISH
assert pk.parse_publish(flags, body) == ("x/y", b"payload", 1, True, False, 7)
assert pk.parse_connack(b"\x00\x05") == (False, 5)
assert pk.parse_suback(b"\x00\x01\x01\x80") == (1, [1, 0x80])
for bad in (b"\x00", b"\x00\x09ab"):  # truncated topic length / topic past the end
    try:
        pk.parse_publish(0, bad)
        raise AssertionError("truncated PUBLISH accepted")
    except pk.MQTTProtocolError:
        pass
try:
    pk.split(b"\x30\x05\x00\x03a")
    raise AssertionError("short packet accepted")
except pk.MQTTProtocolError:
    pass
print("OK")
