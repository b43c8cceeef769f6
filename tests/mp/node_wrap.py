"""The whole node across the ticks wrap, on MicroPython or CPython (the same script), on the
simulated board, against a real broker.

    <interpreter> node_wrap.py BOARD_JSON HOST PORT POLE SPEED KEY TICKS0 RUN_S

The node's clock runs SPEED times real time and its ticks start at TICKS0 (a minute before they
wrap at 2**30 ms, as an ESP32's do after 12.4 days). What happens on the pole, by node seconds
since the start (the wrap comes at TICKS_PERIOD - TICKS0): someone walks past the PIR at 30 s
and at WRAP + 15 s; the PM sensor goes silent at WRAP - 1 s (its silence check spans the wrap);
the lamp breaks at WRAP + 20 s. The run ends after RUN_S node seconds; the last line is JSON with
what the node holds then (uptime, batches, the PM sampler's fault, and whose ticks arithmetic
ran: the port's own, as on a 32-bit port, or spnode.compat's shim).
"""

import asyncio
import json
import sys
import time

from spnode import boarddef
from spnode.app import Node
from spnode.board.sim import SimBoard
from spnode.clock import ScaledClock
from spnode.compat import TICKS_PERIOD, ticks_diff
from spnode.sim.devices import Pms5003Device
from spnode.sim.lamp import LampModel

board_json, host, port, pole, speed, key, ticks0, run_s = sys.argv[1:9]
ticks0 = int(ticks0)
local = {
    "pole": pole,
    "node": "n1",
    "wifi": {"ssid": "sim"},
    "broker": "mqtt://%s:%s" % (host, port),
    "location": {"lat": 51.92, "lon": 4.48},
    "sensors": ["pir", "pm_alt"],
    "update_key": key,
}


async def scenario(clock, board, pm, lamp, wrap_ms, end_ms, node):
    """The pole's events at their node times (elapsed ticks since the start, across the wrap)."""
    pir = board.pin("pir")
    todo = [
        (30000, "walk"),
        (wrap_ms - 1000, "pm silent"),
        (wrap_ms + 15000, "walk"),
        (wrap_ms + 20000, "lamp broken"),
        (end_ms, "end"),
    ]
    while todo:
        at, what = todo[0]
        if ticks_diff(clock.ticks_ms(), ticks0) >= at:
            todo.pop(0)
            print("scenario:", what)
            if what == "walk":
                pir.set(1)
                pir.set(0)
            elif what == "pm silent":
                pm.fault = "silent"
            elif what == "lamp broken":
                lamp.broken = True
            else:
                node.stop("done")
                return
        await clock.sleep_ms(50)


async def main():
    board = SimBoard(boarddef.load(board_json))
    pm = board.uart("pm").attach(Pms5003Device())
    lamp = LampModel(board.pwm("lamp"), board.pin("relay"))
    board.adc("lamp_current").source = lamp.mv
    clock = ScaledClock(float(speed), ticks0=ticks0)
    n = Node(board, local, clock=clock, keepalive=10)
    wrap_ms = TICKS_PERIOD - ticks0
    task = asyncio.create_task(scenario(clock, board, pm, lamp, wrap_ms, int(run_s) * 1000, n))
    reason = await n.run()
    task.cancel()
    own = ticks_diff is getattr(time, "ticks_diff", None)
    out = {"exit": reason, "uptime_s": n.uptime_s(), "seq": n.seq, "pm_fault": n.pm.fault,
           "ticks": "port" if own else "shim"}  # fmt: skip
    print(json.dumps(out))


asyncio.run(main())
