"""Buffer key cases on MicroPython: an hour of batches on flash, drop-oldest counted, journal
replay after a reboot and a torn write. micropython buffer_check.py DIR; prints OK last."""

import gc
import json
import sys

from spnode.buffer import Buffer

d = sys.argv[1]


def batch(seq):
    r = '{"ts":%d,"q":"pm25","v":12.345,"dur":60,"src":"pm","flags":["indicative"]}' % (
        1795582800 + seq * 60
    )
    return ('{"boot":1,"seq":%d,"readings":[' % seq + ",".join([r] * 18) + "]}").encode()


def drain(buf):
    out = []
    while True:
        item = buf.peek()
        if item is None:
            return out
        out.append(json.loads(item[1])["seq"])
        assert buf.commit(item[0])


gc.collect()
free0 = gc.mem_free()
buf = Buffer(160000, 90, d + "/q")
for s in range(60):
    assert buf.push(batch(s)) == 0
gc.collect()
held = free0 - gc.mem_free()
assert held < 4096, held  # an hour of ~1.4 KB batches, and RAM holds only their index
assert len(buf) == 60 and buf.dropped == 0
for _ in range(20):
    item = buf.peek()
    buf.commit(item[0])
buf.close()
again = Buffer(160000, 90, d + "/q")
assert again.restore() == 40
assert drain(again) == list(range(20, 60))
small = Buffer(160000, 3, d + "/q2")
for s in range(5):
    small.push(batch(s))
assert small.dropped == 2
small.close()
with open(d + "/q2", "rb") as f:
    data = f.read()
with open(d + "/q2", "wb") as f:
    f.write(data[:-5])  # torn last record
again = Buffer(160000, 3, d + "/q2")
assert again.restore() == 2
assert drain(again) == [2, 3]
ram = Buffer(40000, 72)
for s in range(80):
    ram.push(b'{"boot":1,"seq":%d}' % s)
assert ram.dropped == 8 and drain(ram) == list(range(8, 80))
# kept until confirmed, sent again after a rewind and after a reboot (the journal's B and X)
conf = Buffer(160000, 90, d + "/q3")
for s in range(6):
    conf.push(batch(s), 7, s)
assert drain(conf) == list(range(6)) and len(conf) == 6
assert conf.confirm(7, 0, 1) == 2 and conf.confirm(7, 3, 3) == 1
conf.awaiting = 0
assert drain(conf) == [2, 4, 5]
conf.close()
conf = Buffer(160000, 90, d + "/q3")
assert conf.restore() == 3 and drain(conf) == [2, 4, 5]
assert conf.confirm(7, 0, 9) == 3 and len(conf) == 0 and conf.used == 0
print("held", held)
print("OK")
