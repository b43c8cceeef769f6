"""Board layer: the one seam between node logic and hardware.

A board object hands out buses, pins and timers by the names the board definition gives them
(see hardware/boards/README.md). Two implementations share one interface: `esp32.Esp32Board`
(the only module that imports `machine` and `network`) and `sim.SimBoard` (pure Python, with
simulated devices attached to its buses).

Usage::

    from spnode import boarddef
    from spnode.board import open_board

    bdef = boarddef.load("board.json")
    board = open_board(bdef)          # no I/O yet
    i2c = board.i2c("main")           # machine.I2C(0, sda=Pin(21), scl=Pin(22)) on the ESP32
"""


def open_board(bdef):
    """The board object for a validated board definition (dict from boarddef.load)."""
    if bdef["platform"] == "esp32":
        from spnode.board.esp32 import Esp32Board

        return Esp32Board(bdef)
    from spnode.board.sim import SimBoard

    return SimBoard(bdef)
