# MicroPython script (not CPython): one pole of a simulated street as a real MicroPython process.
#
#     micropython -X heapsize=... romboot.py node.romfs street_node.py SPEC_JSON
#
# SPEC_JSON: {"board": path, "local": node.json contents, "data_dir": path, "speed": x,
# "start": UTC seconds}. Runs the firmware's Node (spnode.app) on the simulated board, from the
# ROMFS image, with a clock ``speed`` times real time from ``start`` (the street's), until it
# is told to reboot or is terminated. Prints JSON lines: {"booted": ...} once running, a
# {"heap": ...} line every 100 simulated seconds, and {"exit": ...} at the end.
import asyncio
import gc
import json
import sys

from spnode import boarddef, unload
from spnode.app import Node
from spnode.board.sim import SimBoard
from spnode.clock import ScaledClock
from spnode.sim.fitted import fit

with open(sys.argv[1]) as f:
    spec = json.loads(f.read())
f = None


async def main():
    board = SimBoard(boarddef.load(spec["board"]))
    unload("spnode.boarddef")
    fit(board, spec["local"]["sensors"])  # a simulated device behind each sensor, and the lamp
    clock = ScaledClock(float(spec["speed"]), spec["start"])
    node = Node(board, spec["local"], clock=clock, data_dir=spec["data_dir"])
    node.start()
    gc.collect()
    print(json.dumps({"booted": spec["local"]["pole"], "heap": gc.mem_alloc()}))

    async def heap():
        while True:
            await clock.sleep_ms(100_000)
            gc.collect()
            print(json.dumps({"heap": gc.mem_alloc(), "free": gc.mem_free(), "seq": node.seq}))

    watcher = asyncio.create_task(heap())
    await node._stop.wait()
    watcher.cancel()
    await node.shutdown()
    print(
        json.dumps(
            {
                "exit": node.exit_reason,
                "seq": node.seq,
                "dropped": node.buffer.dropped,
                "lost": node.lost,
                "level": node.level,
            }
        )
    )


asyncio.run(main())
