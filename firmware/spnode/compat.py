"""The few things MicroPython and CPython spell differently, in one place.

Node logic imports `ticks_ms`, `ticks_diff`, `ticks_add` and `const` from here instead of from
`time`/`micropython`, so the same module runs on the node and in the simulator. (Nothing more:
the drivers import it too, and a driver's check on the node must not pull in asyncio.)

Ticks wrap at ``TICKS_PERIOD`` (2**30 ms, 12.4 days) on both: on the ESP32 that is the port's
own ``time.ticks_ms``; on CPython the same arithmetic is written out here, so a raw subtraction
of two ticks breaks in the simulator and the CPython tests as it would on the node after 12.4
days. Every interval goes through ``ticks_diff``/``ticks_add``. ``set_ticks_offset`` moves
CPython's ticks (a test starts them a few minutes before the wrap).
"""

import sys

MICROPYTHON = sys.implementation.name == "micropython"
TICKS_PERIOD = 1 << 30  # MicroPython's ticks_ms wraps at 2**30
_MASK = TICKS_PERIOD - 1
_HALF = TICKS_PERIOD // 2

if MICROPYTHON:
    import time

    from micropython import const

    ticks_ms = time.ticks_ms
    ticks_diff = time.ticks_diff
    ticks_add = time.ticks_add
else:
    import time

    _offset = 0

    def const(x):
        return x

    def set_ticks_offset(ms):
        """Add ``ms`` to what ``ticks_ms`` reads from now on (tests: to cross the wrap)."""
        global _offset
        _offset = ms

    def ticks_ms():
        return (int(time.monotonic() * 1000) + _offset) & _MASK

    def ticks_diff(a, b):
        """a - b for ticks, correct across the wrap (as MicroPython's time.ticks_diff)."""
        return ((a - b + _HALF) & _MASK) - _HALF

    def ticks_add(a, b):
        return (a + b) & _MASK


__all__ = [
    "MICROPYTHON",
    "TICKS_PERIOD",
    "const",
    "ticks_add",
    "ticks_diff",
    "ticks_ms",
]
