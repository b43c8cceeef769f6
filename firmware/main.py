# The node's main program on the ESP32: updater first (probation, rollback), then the node.
# Thin by design: everything else is in spnode/ and runs the same in the simulator.
# A production node runs the firmware frozen into its image and is updated a whole image at a
# time into its other app slot (spnode.imgupdate); a development node runs the .mpy tree in
# /app, updated as an archive swapped in at boot (spnode.update), before anything imports it.
import asyncio
import gc
import os
import sys

from spnode import VERSION
from spnode.flash import exists

DEV = exists("/app")
if DEV:
    from spnode.update import Updater

    mode = Updater("/", version=VERSION).boot()
    for name in list(sys.modules):  # the swap may have brought new versions: import afresh
        if name.startswith("spnode"):
            del sys.modules[name]
    gc.collect()

from spnode import boarddef, unload  # noqa: E402
from spnode.board import open_board  # noqa: E402

board = open_board(boarddef.load("/board.json"))
boarddef = None
unload("spnode.boarddef")  # checked once; its code would only take heap
if DEV:
    updater = Updater("/", version=VERSION)
elif board.ota_running() is not None:
    from spnode.imgupdate import ImageUpdater

    updater = ImageUpdater(board, "/data", VERSION)
    mode = updater.boot()
else:  # one app slot and no /app: nothing to update into
    updater, mode = None, "normal"


def failsafe(why):
    """No usable node.json: full light, and wait for a technician (REPL, mpremote)."""
    print("node.json:", why, "- lamp full on; fix the file and reset")
    lamp = board.bdef.get("lamp")
    if lamp:
        from spnode.drivers.lamp import Lamp

        relay = board.pin(lamp["relay"]) if lamp.get("relay") else None
        Lamp(board.pwm(lamp["pwm"]), lamp["rated_w"], relay=relay).set_level(1.0, 0)


async def main():
    from spnode.app import Node
    from spnode.nodeconfig import ConfigError, load_node_config

    try:
        local = load_node_config("/node.json")
    except ConfigError as e:
        failsafe(str(e))
        return None
    load_node_config = ConfigError = None
    unload("spnode.nodeconfig")  # Node keeps the values (spnode.app._Local), not the checks
    try:
        os.mkdir("/data")
    except OSError:
        pass
    node = Node(
        board,
        local,
        data_dir="/data",
        boot_mode=mode,
        ntp_host="pool.ntp.org",
        updater=updater,
    )
    gc.collect()
    return await node.run()


if asyncio.run(main()) == "reboot":
    board.reset()
