"""Streetpole node firmware: MicroPython on the ESP32, and the same code on CPython."""

VERSION = "0.1.0"
UPDATE_CMD = "update.cmd"  # in the data dir: an update accepted, to download at the next boot


def unload(*names):
    """Forget modules (e.g. ``"spnode.boarddef"`` once the board definition is loaded): on
    MicroPython a module's code sits in the heap until nothing refers to it any more. Does
    nothing on CPython, where it would only make two copies of a class."""
    import sys

    if sys.implementation.name != "micropython":
        return
    for name in names:
        if sys.modules.pop(name, None) is not None and "." in name:
            pkg, attr = name.rsplit(".", 1)
            try:
                delattr(sys.modules[pkg], attr)
            except (KeyError, AttributeError):
                pass
