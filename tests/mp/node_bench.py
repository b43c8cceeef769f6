"""Node heap and control-loop cost on MicroPython (no broker: the tasks are not started).

    micropython node_bench.py BOARD_JSON DATA_DIR SENSORS CYCLES [bare]

Prints JSON lines: {"import": bytes} after importing the node, {"boot": bytes} after the Node
is built with its persisted config (the heap in use, gc.mem_alloc() after a collection), then
{"cycles": n, "heap": bytes, "us_per_cycle": us} after ``CYCLES`` control cycles on a clock
advanced 100 ms per cycle, with someone walking past the PIR every 20 s and a report every
minute, taken by the broker (see ``sent``). A simulated device sits behind each sensor
(spnode/sim/fitted.py), so the reports carry every sensor's readings; what the devices take is
the test bench's, not the node's, and is left out of the figures ({"devices": bytes}; only
roughly: the interpreter's name pools grow in steps, and a step the devices' names started is
charged to them). With ``bare`` no device is fitted: nothing but the node is in the heap, the
sensors find no chip and the reports carry the lamp's and the PIR's readings only.
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
bare = sys.argv[5:6] == ["bare"]
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
# The simulated devices use the node's own drivers (an SPS30's CRC, the BME280's calibration
# layout): those the node loads for its sensors are loaded first, counted as the node's.
for name in local["sensors"]:
    kind = board.bdef["sensors"][name]["type"]
    if kind in ("sps30", "bme280"):
        __import__("spnode.drivers." + kind)
gc.collect()
before = gc.mem_alloc()
if not bare:
    from spnode.sim.fitted import fit

    fit(board, local["sensors"])
    fit = None
gc.collect()
DEVICES = gc.mem_alloc() - before  # the test bench's: not counted as the node's
BASE += DEVICES
print(json.dumps({"devices": DEVICES}))
node = Node(board, local, clock=clock, data_dir=data_dir)
gc.collect()
print(json.dumps({"boot": gc.mem_alloc() - BASE, "version": node.remote.version}))
pir = board.pin("pir")


def sent(node):
    """What the sender does once the broker acknowledged everything, and what the node does
    when the controller confirms it stored them: the bench measures a connected node.
    (Offline or unconfirmed, the flash buffer's index grows by a few bytes per batch up to its
    bound, SIZE_FLASH, and the outbox up to OUTBOX_MAX messages.)"""
    node.outbox.clear()
    while True:
        item = node.buffer.peek()
        if item is None:
            break
        node.buffer.commit(item[0])
    node.buffer.confirm(node.boot, 0, node.seq)


n = int(cycles)
us = 0  # in the control step alone
for i in range(n):
    clock.ms += 100
    if i % 200 == 0:
        pir.set(1)
        pir.set(0)
    t0 = time.ticks_us()
    node.control_step()
    us += time.ticks_diff(time.ticks_us(), t0)
    if node.noise is not None:  # the microphone's 32 blocks a second: 3 a cycle, 1 more twice
        for _ in range(4 if i % 5 == 0 else 3):
            node.noise.read(node.mic)
    if i % 10 == 9:
        node.sense_step()  # once a second: the PM sampler, the lamp's check
    if i % 600 == 599:
        node.report()  # a reporting period: a batch into the (flash) buffer
        sent(node)
gc.collect()
print(
    json.dumps(
        {
            "cycles": n,
            "heap": gc.mem_alloc() - BASE,
            "us_per_cycle": us / n if n else 0,
            "batches": node.seq,
            "state": node.dimmer.describe()[0],
        }
    )
)
