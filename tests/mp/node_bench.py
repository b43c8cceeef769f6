"""Node heap and control-loop cost on MicroPython (no broker: the tasks are not started).

    micropython node_bench.py BOARD_JSON DATA_DIR SENSORS CYCLES

Prints JSON lines: {"import": bytes} after importing the node, {"boot": bytes} after the Node
is built with its persisted config (the heap in use, gc.mem_alloc() after a collection), then
{"cycles": n, "heap": bytes, "us_per_cycle": us} after ``CYCLES`` control cycles on a clock
advanced 100 ms per cycle, with someone walking past the PIR every 20 s and a report every
minute, taken by the broker (see ``sent``).
"""

import gc
import sys

gc.collect()
BASE = gc.mem_alloc()
import json  # noqa: E402
import time  # noqa: E402

from spnode import boarddef, unload  # noqa: E402
from spnode.app import Node  # noqa: E402
from spnode.board.sim import SimBoard  # noqa: E402

board_json, data_dir, sensors, cycles = sys.argv[1:5]
gc.collect()
print(json.dumps({"import": gc.mem_alloc() - BASE}))


class SteppedClock:
    """Time advanced by the bench, not by waiting."""

    def __init__(self):
        self.ms = 0
        self.t0 = 1795582800
        self.valid = True

    def ticks_ms(self):
        return self.ms

    def now(self):
        return self.t0 + self.ms / 1000


local = {
    "pole": "BENCH-1",
    "node": "n1",
    "wifi": {"ssid": "sim"},
    "broker": "mqtt://127.0.0.1:1",
    "location": {"lat": 51.92, "lon": 4.48},
    "sensors": [s for s in sensors.split(",") if s],
    "update_key": "00112233445566778899aabbccddeeff",
}
config = {
    "version": 1,
    "report_period_s": 60,
    "tz": "CET-1CEST,M3.5.0,M10.5.0/3",
    "dimming": {
        "programs": {
            "std": {
                "steps": [
                    {"at": "sunset", "offset_min": -10, "level": 1.0},
                    {"at": "23:00", "level": 0.4},
                    {"at": "sunrise", "offset_min": 10, "level": 0.0},
                ]
            }
        },
        "default_program": "std",
        "min_level": 0.1,
        "presence": {"level": 1.0, "ramp_up_s": 1.5, "hold_s": 10, "ramp_down_s": 5},
    },
}
with open(data_dir + "/config.json", "w") as f:
    f.write(json.dumps(config))
clock = SteppedClock()
board = SimBoard(boarddef.load(board_json))
boarddef = None
unload("spnode.boarddef")  # as main.py
node = Node(board, local, clock=clock, data_dir=data_dir)
gc.collect()
print(json.dumps({"boot": gc.mem_alloc() - BASE, "version": node.remote.version}))
pir = board.pin("pir")


def sent(node):
    """What the sender does once the broker acknowledged everything: the bench measures a
    connected node. (Offline, the flash buffer's index grows by a few bytes per batch up to its
    bound, SIZE_FLASH, and the outbox up to OUTBOX_MAX messages.)"""
    node.outbox.clear()
    while True:
        item = node.buffer.peek()
        if item is None:
            break
        node.buffer.commit(item[0])


n = int(cycles)
t0 = time.ticks_us()
for i in range(n):
    clock.ms += 100
    if i % 200 == 0:
        pir.set(1)
        pir.set(0)
    node.control_step()
    if i % 600 == 599:
        node.report()  # a reporting period: a batch into the (flash) buffer
        sent(node)
us = time.ticks_diff(time.ticks_us(), t0)
gc.collect()
print(
    json.dumps(
        {
            "cycles": n,
            "heap": gc.mem_alloc() - BASE,
            "us_per_cycle": us / n,
            "batches": node.seq,
            "state": node.dimmer.describe()[0],
        }
    )
)
