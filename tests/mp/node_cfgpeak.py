"""The config check peak without the network: boot a Node, check three configs and a command.

    micropython -X heapsize=NNNk node_cfgpeak.py BOARD_JSON DATA_DIR [SENSORS [keep]]

Prints the heap in use after boot and after each message, then "OK". The smallest heap in which
it prints "OK" (deterministic, no tasks running) is the "min heap" row of docs/firmware.md.
SENSORS: comma-separated (default pir). ``keep``: ``unload`` does nothing, so every module
stays loaded once imported; ``keep:MOD,...``: those modules (and their submodules) stay
(docs/firmware.md, "Import and unload": what the trick saves).
"""

import gc
import sys

gc.collect()
BASE = gc.mem_alloc()
import asyncio  # noqa: E402
import json  # noqa: E402

import micropython  # noqa: E402

if len(sys.argv) > 4 and sys.argv[4].startswith("keep"):
    import protocols

    _KEEP = sys.argv[4][5:].split(",") if sys.argv[4] != "keep" else None
    _unload = protocols.unload

    def _some(*names):  # unload all but the kept modules (and their submodules)
        _unload(*[n for n in names if not [k for k in _KEEP if n == k or n.startswith(k + ".")]])

    protocols.unload = (lambda *names: None) if _KEEP is None else _some  # before spnode binds it
    protocols = None

from spnode import boarddef, unload  # noqa: E402
from spnode.app import Node  # noqa: E402
from spnode.board.sim import SimBoard  # noqa: E402

board_json, data_dir = sys.argv[1:3]


class C:
    def __init__(self):
        self.ms = 0
        self.valid = True

    def ticks_ms(self):
        return self.ms

    def now(self):
        return 1795582800 + self.ms / 1000


local = {
    "pole": "P-1",
    "node": "n1",
    "wifi": {"ssid": "sim"},
    "broker": "mqtt://127.0.0.1:1",
    "location": {"lat": 51.92, "lon": 4.48},
    "sensors": sys.argv[3].split(",") if len(sys.argv) > 3 else ["pir"],
    "update_key": "00112233445566778899aabbccddeeff",
}
cfg = {
    "version": 1,
    "report_period_s": 10,
    "tz": "UTC0",
    "neighbours": [{"pole": "P-nb", "node": "n1"}],
    "dimming": {
        "programs": {"low": {"steps": [{"at": "00:00", "level": 0.2}]}},
        "default_program": "low",
        "min_level": 0.1,
        "presence": {
            "level": 1.0,
            "hold_s": 120,
            "ramp_up_s": 1,
            "ramp_down_s": 5,
            "neighbour_level": 0.7,
        },
    },
}
board = SimBoard(boarddef.load(board_json))
boarddef = None
unload("spnode.boarddef")
node = Node(board, local, clock=C(), data_dir=data_dir)
gc.collect()
print("boot", gc.mem_alloc() - BASE)
micropython.qstr_info()
p1 = json.dumps(cfg).encode()
cfg["version"] = 2
cfg["dimming"]["default_program"] = "bright"
p2 = json.dumps(cfg).encode()
cfg = None


async def m():
    for p in (p1, p2, p1):
        await node._handle(node.t_config, p)
        gc.collect()
        print("after", gc.mem_alloc() - BASE, node.outbox[-1][1] if node.outbox else None)
    await node._handle(node.t_cmd, b'{"id":"ov-1","ts":1795582800,"cmd":"override","level":1.0}')
    gc.collect()
    print("after cmd", gc.mem_alloc() - BASE, node.outbox[-1][1])


asyncio.run(m())
micropython.qstr_info()
print("OK")
