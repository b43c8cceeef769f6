# MicroPython script (not CPython): the virtual node's power-on, run by
# `streetpole node virtual --run` with the node's flash folder as working directory.
#
# It does what boot.py and main.py do on an ESP32 at power-on, with the folder as the flash's
# root: main.py names /app, /board.json, /node.json and /data, which on the unix port are the
# host's root. The simulated sensors are wired by sim_rig.py (as for the self-test). Not here:
# the updater (updates swap /app on the ESP32's flash layout) and NTP (the host's clock is right).
# Exit status 3: the node asked for a reset (a reboot command); the caller starts it again.
import sys

if "app" not in sys.path:  # boot.py's /app: the node's code is files on its flash
    sys.path.insert(0, "app")

import asyncio
import gc
import os

from spnode import VERSION, boarddef, unload
from spnode.board import open_board

bdef = boarddef.load("board.json")
board = open_board(bdef)
unload("spnode.boarddef")
try:
    import sim_rig

    sim_rig.attach(board, bdef)
    sim_rig = None
except ImportError:
    print("(no sim_rig.py: no simulated sensors are wired)")
bdef = None


async def main():
    from spnode.app import Node
    from spnode.nodeconfig import ConfigError, load_node_config

    try:
        local = load_node_config("node.json")
    except ConfigError as e:
        print("node.json:", e, "- provision the node first (streetpole node provision)")
        return "no-config"
    load_node_config = ConfigError = None
    unload("spnode.nodeconfig")
    if "data" not in os.listdir():
        os.mkdir("data")
    node = Node(board, local, data_dir="data")
    gc.collect()
    print("node", local.pole + "/" + local.node, "starting, firmware", VERSION)
    return await node.run()


reason = asyncio.run(main())
print("node stopped:", reason)
sys.exit(3 if reason == "reboot" else (1 if reason == "no-config" else 0))
