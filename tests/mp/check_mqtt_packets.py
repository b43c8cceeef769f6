"""Exact bytes of the packets protocols.mqtt_framing sends; runs on MicroPython and CPython, prints
OK. (Receiving, and the remaining length: check_mqtt_framing.py.)"""

from protocols import mqtt_framing as mf

# CONNECT, MQTT 3.1.1 section 3.1: "MQTT" level 4, flags, keepalive, client id
assert mf.send_connect(b"n1", keepalive=60) == b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02n1"
c = mf.send_connect("n1", 30, False, "u", "p", (b"t", b"off", 1, True))
# flags: user 0x80 | password 0x40 | will retain 0x20 | will qos1 0x08 | will 0x04 = 0xEC
assert c[9] == 0xEC, c
assert c.endswith(b"\x00\x01t\x00\x03off\x00\x01u\x00\x01p")
# PUBLISH QoS 1 retained, pid 10; with DUP
assert mf.send_publish("a/b", b"hi", 1, True, False, 10) == b"\x33\x09\x00\x03a/b\x00\x0ahi"
assert mf.send_publish("a/b", b"hi", 1, False, True, 10)[0] == 0x3A
assert mf.send_publish("a/b", b"", 0) == b"\x30\x05\x00\x03a/b"
assert mf.send_puback(258) == b"\x40\x02\x01\x02"
assert mf.send_subscribe(1, [("a/+", 1)]) == b"\x82\x08\x00\x01\x00\x03a/+\x01"
assert mf.send_unsubscribe(2, ["a"]) == b"\xa2\x05\x00\x02\x00\x01a"
# a QoS 1 PUBLISH needs a packet id 1..65535
for bad in (0, 65536):
    try:
        mf.send_publish("a", b"", 1, False, False, bad)
        raise AssertionError("packet id %d accepted" % bad)
    except mf.MQTTProtocolError:
        pass
assert mf.PINGREQ_PACKET == b"\xc0\x00" and mf.DISCONNECT_PACKET == b"\xe0\x00"
print("OK")
