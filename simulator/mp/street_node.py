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

with open(sys.argv[1]) as f:
    spec = json.loads(f.read())
f = None


def _lamp(board):
    pwm, relay = board.pwm("lamp"), board.pin("relay")

    def mv():  # a healthy 60 W lamp on 230 V behind a 0.5 A/V current sense
        level = pwm.duty_u16() / 65535 if relay.value() else 0.0
        return (level * 60 / 230 + 0.01) / 0.5 * 1000

    board.adc("lamp_current").source = mv


async def main():
    board = SimBoard(boarddef.load(spec["board"]))
    unload("spnode.boarddef")
    _lamp(board)
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
    await node.stopped.wait()
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
