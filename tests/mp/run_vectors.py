"""Run protocol test vectors (JSON lines) through the codec; print one JSON result line per vector.

Runs unchanged on MicroPython and CPython: `micropython run_vectors.py FILE...`. The pytest side
(tests/test_protocol_vectors.py) compares the lines with each vector's expectation.
"""

import gc
import json
import sys

from protocols import codec
from protocols.errors import ProtocolError


def run(path):
    # One vector per line, read one at a time: the heap is ESP32-sized.
    with open(path) as f:
        for line in f:
            if line.strip():
                check(path, json.loads(line))
            gc.collect()


def check(path, vector):
    channel = vector["channel"]
    raw = vector.get("raw")
    payload = raw.encode() if raw is not None else json.dumps(vector["payload"]).encode()
    result = {"file": path, "name": vector["name"], "ok": True}
    try:
        if "topic" in vector:
            codec.parse(vector["topic"], payload)
        else:
            msg = codec.decode(channel, payload)
            # what decodes must encode again to the same message
            if codec.decode(channel, codec.encode(channel, msg)) != msg:
                raise ProtocolError("payload", "encode/decode round trip changed it")
    except ProtocolError as e:
        result["ok"] = False
        result["field"] = e.field
        result["error"] = str(e)
    print(json.dumps(result))


for arg in sys.argv[1:]:
    run(arg)
