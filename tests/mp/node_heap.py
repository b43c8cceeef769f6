"""Where the node's heap goes: each module's import and each boot phase, on MicroPython.

    micropython node_heap.py BOARD_JSON DATA_DIR SENSORS

Imports the modules the node loads, leaves first, so each line is one module's own cost (its
code, names and data; the interpreter's qstr pools grow in steps, so a few hundred bytes move
between neighbours), then builds the Node as tests/mp/node_bench.py does (with its persisted
config). Prints JSON lines
{"what": name, "bytes": heap in use added}, each after a ``micropython.qstr_info()`` line (so
the caller can charge the names a module interns to it rather than to whichever module made a
qstr pool grow), and a last {"what": "total", "bytes": ...}.
"""

import gc
import sys

import micropython

gc.collect()
BASE = gc.mem_alloc()
_prev = [BASE]


def _mark(what):
    gc.collect()
    a = gc.mem_alloc()
    micropython.qstr_info()  # one "qstr pool: ..." line: the interned names so far
    print('{"what": "%s", "bytes": %d}' % (what, a - _prev[0]))
    _prev[0] = a


MODULES = [
    "json",
    "asyncio",
    "protocols",
    "protocols.errors",
    "protocols.quantities",
    "protocols.outgoing",
    "spnode",
    "spnode.compat",
    "spnode.tzrules",
    "spnode.dimming",
    "spnode.buffer",
    "spnode.clock",
    "spnode.health",
    "protocols.mqtt_framing",
    "spnode.mqtt_client",
    "spnode.sensing",
    "spnode.app",
    "spnode.board",
    "spnode.board.sim",
    "spnode.boarddef",
]
for _m in MODULES:
    if _m not in sys.modules:
        __import__(_m)
        _mark(_m)
    else:
        _mark(_m + " (already in)")

import json  # noqa: E402

from spnode import boarddef, unload  # noqa: E402
from spnode.app import Node  # noqa: E402
from spnode.board.sim import SimBoard  # noqa: E402

board_json, data_dir, sensors = sys.argv[1:4]


class SteppedClock:
    def __init__(self):
        self.ms = 0
        self.valid = True

    def ticks_ms(self):
        return self.ms

    def now(self):
        return 1795582800 + self.ms / 1000


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
    f.write(json.dumps(config))  # the bench's persisted config, loaded at boot
config = None
board = SimBoard(boarddef.load(board_json))
boarddef = None
unload("spnode.boarddef")  # as main.py
_mark("board (sim, definition loaded; boarddef dropped)")
node = Node(board, local, clock=SteppedClock(), data_dir=data_dir)
_mark("Node built (drivers, config, buffer, client)")
for _m in sorted(sys.modules):
    if _m not in MODULES and (_m.startswith("spnode") or _m.startswith("protocols")):
        print('{"what": "loaded by the node: %s", "bytes": 0}' % _m)
micropython.qstr_info()
print('{"what": "total", "bytes": %d}' % (gc.mem_alloc() - BASE))
