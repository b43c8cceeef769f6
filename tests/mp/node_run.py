"""The whole node firmware on MicroPython, on the simulated board, against a real broker.

    micropython node_run.py BOARD_JSON HOST PORT POLE NODE DATA_DIR SPEED UPDATE_KEY_HEX [SENSORS
                            [OTA_DIR TRIAL_S]]

Runs ``spnode.app.Node`` with a clock ``SPEED`` times faster than real time until the node is
told to reboot; prints JSON lines: {"boot_heap": ...} once booted, {"exit": ...} at the end.
With OTA_DIR the node runs from A/B app slots in that directory (spnode.board.simota, the
runner in tests/harness/abnode.py) and takes whole-image updates (spnode.imgupdate), on
probation for TRIAL_S node seconds.
"""

import gc
import sys

gc.collect()
import asyncio  # noqa: E402
import json  # noqa: E402

from spnode import boarddef, unload  # noqa: E402
from spnode.app import Node  # noqa: E402
from spnode.board.sim import SimBoard  # noqa: E402
from spnode.clock import ScaledClock  # noqa: E402
from spnode.sim.fitted import fit  # noqa: E402

board_json, host, port, pole, node, data_dir, speed, key = sys.argv[1:9]
sensors = sys.argv[9].split(",") if len(sys.argv) > 9 and sys.argv[9] else []
ota_dir, trial_s = (sys.argv[10], int(sys.argv[11])) if len(sys.argv) > 11 else (None, 0)
local = {
    "pole": pole,
    "node": node,
    "wifi": {"ssid": "sim"},
    "broker": "mqtt://%s:%s" % (host, port),
    "location": {"lat": 51.92, "lon": 4.48},
    "sensors": sensors,
    "update_key": key,
}


async def main():
    board = SimBoard(boarddef.load(board_json), ota_dir=ota_dir)
    unload("spnode.boarddef")  # as main.py: the definition's checks are not needed again
    fit(board, sensors)  # a simulated device behind each sensor, the lamp's current sense
    up, mode = None, "normal"
    if ota_dir is not None:
        from spnode import VERSION
        from spnode.imgupdate import ImageUpdater

        up = ImageUpdater(board, data_dir, VERSION, trial_s=trial_s)
        mode = up.boot()
    n = Node(board, local, clock=ScaledClock(float(speed)), data_dir=data_dir, keepalive=10,
             updater=up, boot_mode=mode)  # fmt: skip
    n.start()
    gc.collect()
    print(json.dumps({"boot_heap": gc.mem_alloc(), "free": gc.mem_free(), "mode": mode}))
    await n.stopped.wait()
    await n.shutdown()
    gc.collect()
    print(
        json.dumps(
            {
                "exit": n.exit_reason,
                "heap": gc.mem_alloc(),
                "seq": n.seq,
                "dropped": n.buffer.dropped,
                "lost": n.lost,
                "connects": n.client.connects,
            }
        )
    )


asyncio.run(main())
