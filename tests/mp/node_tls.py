# MicroPython script: the whole node (spnode.app.Node on the simulated board) started from a
# node.json, until its MQTT client has connected or refused the broker, or WAIT_MS passed.
#
#     micropython node_tls.py BOARD_JSON NODE_JSON DATA_DIR WAIT_MS
#
# Prints one JSON line: {"connects", "refused", "last_error", "min_free", "free"}; min_free is
# the least free heap seen while the node connected (sampled every 20 ms), the TLS handshake's
# buffers included; free is what is left after the node shut down.
import asyncio
import gc
import json
import sys
import time

from spnode import boarddef, unload
from spnode.app import Node
from spnode.board.sim import SimBoard
from spnode.clock import ScaledClock

board_json, node_json, data_dir, wait_ms = sys.argv[1:5]


def refused(client):
    """Why the client refused the broker's certificate, or None."""
    e = client.last_error
    return e if e and e.startswith("mqtt: certificate") else None


async def main():
    board = SimBoard(boarddef.load(board_json))
    unload("spnode.boarddef")
    with open(node_json) as f:
        local = json.loads(f.read())
    node = Node(board, local, clock=ScaledClock(1.0), data_dir=data_dir, keepalive=10)
    local = None
    node.client.backoff_ms = (100, 200)
    node.start()
    client = node.client
    low = gc.mem_free()
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < int(wait_ms):
        low = min(low, gc.mem_free())
        if client.connects or refused(client):
            break
        await asyncio.sleep_ms(20)
    await asyncio.sleep_ms(200)  # the birth and first state go out: their heap counts too
    low = min(low, gc.mem_free())
    out = {
        "connects": client.connects,
        "refused": refused(client),
        "last_error": client.last_error,
        "min_free": low,
    }
    await node.shutdown()
    gc.collect()
    out["free"] = gc.mem_free()
    print(json.dumps(out))


asyncio.run(main())
