"""The few things MicroPython and CPython spell differently, in one place.

Node logic imports `ticks_ms`, `ticks_diff`, `sleep_ms` and `const` from here instead of from
`time`/`micropython`, so the same module runs on the node and in the simulator.
"""

import sys

MICROPYTHON = sys.implementation.name == "micropython"

if MICROPYTHON:
    import asyncio
    import time

    from micropython import const

    ticks_ms = time.ticks_ms
    ticks_diff = time.ticks_diff
    ticks_add = time.ticks_add
    sleep_ms = asyncio.sleep_ms
else:
    import asyncio
    import time

    def const(x):
        return x

    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b

    def sleep_ms(ms):
        return asyncio.sleep(ms / 1000)


__all__ = ["MICROPYTHON", "const", "sleep_ms", "ticks_add", "ticks_diff", "ticks_ms"]
