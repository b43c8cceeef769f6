"""A whole-image download on MicroPython, into the file-backed slots, and the heap it takes.

micropython imgupdate_check.py DIR KEYHEX TARGET BOARD_JSON
(DIR holds img.bin, cmd.json, ota/ (flashed) and data/; prints one JSON line at the end)
"""

import gc
import json
import sys
from binascii import unhexlify

from spnode import boarddef
from spnode.board.sim import SimBoard
from spnode.imgupdate import ImageUpdater

d, keyhex, target, board_json = sys.argv[1:5]
with open(d + "/cmd.json") as f:
    cmd = json.loads(f.read())
board = SimBoard(boarddef.load(board_json), ota_dir=d + "/ota")
up = ImageUpdater(board, d + "/data", "0.1.0")
assert up.boot() == "normal"
key = unhexlify(keyhex)
piece = bytearray(512)  # what spnode.httpget's reads hand over
gc.collect()
before = gc.mem_alloc()
peak = before
inst = up.begin(cmd, key, target)
with open(d + "/img.bin", "rb") as f:
    while True:
        n = f.readinto(piece)
        if not n:
            break
        inst.feed(piece if n == len(piece) else piece[:n])
        gc.collect()  # what the download holds, not the garbage it leaves for the collector
        peak = max(peak, gc.mem_alloc())
version = inst.finish()
gc.collect()
peak = max(peak, gc.mem_alloc())
print(json.dumps({"version": version, "heap_before": before, "heap_update_peak": peak}))
