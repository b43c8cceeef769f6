"""Receiving with protocols.mqtt_framing; runs on MicroPython and CPython, prints OK.

Every check compares with packets built here by hand (not with the module's own send_*), so the
two sides cannot agree on a mistake.
"""

from protocols import mqtt_framing as mf


def refused(data, why, max_packet=1 << 20):
    rx = mf.Receiver(max_packet)
    try:
        list(rx.receive_data(data))
    except mf.MQTTProtocolError as e:
        assert why in str(e), (why, str(e))
        return
    raise AssertionError("accepted: %r" % (data,))


def length_bytes(n):
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 127
        out.append(digit | (128 if n else 0))
        if not n:
            return bytes(out)


def publish(topic, payload, qos, pid=0, retain=False):
    t = topic.encode()
    body = len(t).to_bytes(2, "big") + t + (pid.to_bytes(2, "big") if qos else b"") + payload
    return bytes((0x30 | qos << 1 | retain,)) + length_bytes(len(body)) + body


# bodies of exactly 0, 127, 128, 16383 and 16384 bytes (a CONNECT carries any body); first, while
# the heap has room in one piece for them
for n in (0, 127, 128, 16383, 16384):
    lb = length_bytes(n)
    pkt = bytearray(1 + len(lb) + n)  # a body of zeros
    pkt[0] = 0x10
    pkt[1 : 1 + len(lb)] = lb
    rx = mf.Receiver(max_packet=20000)
    got = list(rx.receive_data(memoryview(pkt)[:3])) + list(rx.receive_data(memoryview(pkt)[3:]))
    pkt = None
    assert len(got) == 1 and got[0][:4] == (1, 0, 0, None), n
    assert len(got[0][4]) == n and got[0][4].count(b"\x00") == n, n
    got = None

# A stream of every packet a client receives, each expected as it must come out.
STREAM = [
    (b"\x20\x02\x01\x00", (mf.CONNACK, 0, 0, None, b"\x01\x00")),
    (b"\x90\x04\x00\x07\x01\x80", (mf.SUBACK, 0, 7, None, b"\x01\x80")),
    (publish("a/b", b"hi", 1, 10, True), (mf.PUBLISH, 3, 10, "a/b", b"hi")),
    (publish("st", b"", 0), (mf.PUBLISH, 0, 0, "st", b"")),
    (publish("ü/x", b"x" * 200, 1, 65535), (mf.PUBLISH, 2, 65535, "ü/x", b"x" * 200)),
    (b"\x40\x02\x01\x02", (mf.PUBACK, 0, 258, None, b"")),
    (b"\xb0\x02\x00\x09", (mf.UNSUBACK, 0, 9, None, b"")),
    (b"\xd0\x00", (mf.PINGRESP, 0, 0, None, b"")),
]
data = b"".join(p for p, _ in STREAM)
want = [w for _, w in STREAM]


# the whole stream in one piece, cut in two at every byte, and one byte at a time
def cuts():  # one at a time: the heap is ESP32-sized
    yield [data]
    for i in range(1, len(data)):
        yield [data[:i], data[i:]]
    yield [data[i : i + 1] for i in range(len(data))]


for chunks in cuts():
    rx = mf.Receiver()
    got = []
    for c in chunks:
        got.extend(rx.receive_data(c))
    assert got == want, (len(chunks), got)
    assert rx.held == 0
# cut in three at every pair of points inside the first packets (headers split twice)
head = len(b"".join(p for p, _ in STREAM[:3]))
for i in range(1, head):
    for j in range(i + 1, head + 2):
        rx = mf.Receiver()
        got = list(rx.receive_data(data[:i])) + list(rx.receive_data(data[i:j]))
        got += list(rx.receive_data(data[j:]))
        assert got == want, (i, j)

# remaining length edges (MQTT 3.1.1 section 2.2.3), received and sent
for n, enc in (
    (0, b"\x00"),
    (127, b"\x7f"),
    (128, b"\x80\x01"),
    (16383, b"\xff\x7f"),
    (16384, b"\x80\x80\x01"),
    (2097151, b"\xff\xff\x7f"),
    (2097152, b"\x80\x80\x80\x01"),
    (268435455, b"\xff\xff\xff\x7f"),
):
    assert mf.encode_length(n) == enc, n
    assert length_bytes(n) == enc, n
# the largest remaining length is read (and, above the limit, skipped without being held)
rx = mf.Receiver(max_packet=1000)
assert list(rx.receive_data(b"\x30\xff\xff\xff\x7f" + b"z" * 3000)) == []
assert rx.oversized == 1 and rx.held == 0
for bad in (268435456, -1):
    try:
        mf.encode_length(bad)
        raise AssertionError("encoded %d" % bad)
    except mf.MQTTProtocolError:
        pass
# a fifth length byte is refused, whole or arriving byte by byte
refused(b"\x30\xff\xff\xff\xff\x01", "four bytes")
rx = mf.Receiver()
try:
    for b in b"\x30\x80\x80\x80\x80\x01":
        list(rx.receive_data(bytes((b,))))
    raise AssertionError("5-byte length accepted")
except mf.MQTTProtocolError:
    pass

# oversized: skipped as it arrives (never held), counted; the next packet comes through
big = publish("big", b"B" * 5000, 1, 3)
small = publish("s", b"ok", 0)
for step in (1, 7, 512, len(big) + len(small)):
    rx = mf.Receiver(max_packet=1024)
    stream = big + small + big[:10]
    got = []
    most = 0
    for k in range(0, len(stream), step):
        got.extend(rx.receive_data(stream[k : k + step]))
        most = max(most, rx.held)
    assert got == [(mf.PUBLISH, 0, 0, "s", b"ok")], (step, got)
    # the second, cut short, is known oversized from its header already
    assert rx.oversized == 2 and most < len(small), (step, rx.oversized, most)
# at the limit exactly: taken; one byte over: skipped
edge = publish("e", b"x" * 100, 0)
rx = mf.Receiver(max_packet=len(edge))
assert len(list(rx.receive_data(edge))) == 1
rx = mf.Receiver(max_packet=len(edge) - 1)
assert list(rx.receive_data(edge)) == [] and rx.oversized == 1

# malformed packets: refused with a reason
refused(b"\x00\x00", "reserved")
refused(b"\xf0\x00", "reserved")
refused(b"\x36\x05\x00\x01a\x00\x01", "QoS 3")
refused(b"\x30\x01\x00", "too short")
refused(b"\x32\x05\x00\x09p\x00\x01", "runs past")
refused(b"\x30\x03\x00\x01\xff", "UTF-8")
refused(b"\x32\x05\x00\x01a\x00\x00", "packet id 0")
refused(b"\x21\x02\x00\x00", "flags")
refused(b"\x20\x03\x00\x00\x00", "CONNACK")
refused(b"\xd0\x01\x00", "body")
refused(b"\x40\x03\x00\x01\x00", "not 2")
refused(b"\x40\x01\x00", "packet id")
refused(b"\x90\x02\x00\x01", "return code")
# what an incomplete packet leaves held
rx = mf.Receiver()
list(rx.receive_data(publish("t", b"x" * 50, 0)[:20]))
assert rx.held == 20
print("OK")
