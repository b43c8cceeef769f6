"""Streetpole wire protocol v1: topics and payloads, shared by node, controller and simulator.

Plain Python that runs unchanged on MicroPython and CPython (sans-IO: bytes in, messages out).
See protocols/README.md for the specification.
"""

MAX_PAYLOAD = 8192  # bytes, any channel (here so the codec need not load the schemas for it)


def unload(*names):
    """Forget modules loaded for one job (a message's check, a node's boot; e.g.
    ``"protocols.rules"``): on MicroPython a module's code and names sit in the heap until
    nothing refers to them any more. Does nothing on CPython, where the simulator's nodes would
    only import them again for every message, and a class would come in two copies. The node's
    code uses it as ``spnode.unload``; docs/firmware.md ("Import and unload") says where it
    pays."""
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
