"""The few things MicroPython and CPython spell differently, in one place.

Node logic imports `ticks_ms`, `ticks_diff`, `ticks_add` and `const` from here instead of from
`time`/`micropython`, so the same module runs on the node and in the simulator. (Nothing more:
the drivers import it too, and a driver's check on the node must not pull in asyncio.)

Ticks wrap at ``TICKS_PERIOD`` (2**30 ms, 12.4 days) everywhere. The ESP32's ``time.ticks_ms``
does; MicroPython's 64-bit unix port (the tests') wraps at 2**62 and CPython not at all, so for
those the same arithmetic is written out here, and a raw subtraction of two ticks breaks in the
simulator and the tests as it would on the node after 12.4 days. Every interval goes through
``ticks_diff``/``ticks_add``. On CPython ``set_ticks_offset`` moves the ticks (a test starts
them a few minutes before the wrap; on MicroPython tests use ``ScaledClock(ticks0=...)``).
"""

import sys
import time

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


MICROPYTHON = sys.implementation.name == "micropython"
TICKS_PERIOD = const(0x40000000)  # 2**30
# 2**30 is one past a 32-bit port's small ints, so `% TICKS_PERIOD` makes a big int (an
# allocation, in an interrupt too); `& TICKS_MASK` keeps to small ints.
TICKS_MASK = const(0x3FFFFFFF)
_HALF = const(0x20000000)

if MICROPYTHON and time.ticks_add(TICKS_MASK, 1) == 0:  # the port's own ticks wrap at 2**30: ESP32
    ticks_ms = time.ticks_ms
    ticks_diff = time.ticks_diff
    ticks_add = time.ticks_add
else:
    if MICROPYTHON:  # the 64-bit unix port

        def ticks_ms():
            return time.ticks_ms() & TICKS_MASK

    else:
        _offset = 0

        def set_ticks_offset(ms):
            """Add ``ms`` to what ``ticks_ms`` reads from now on (tests: to cross the wrap)."""
            global _offset
            _offset = ms

        def ticks_ms():
            return (int(time.monotonic() * 1000) + _offset) & TICKS_MASK

    def ticks_diff(a, b):
        """a - b for ticks, correct across the wrap (as MicroPython's time.ticks_diff)."""
        return ((a - b + _HALF) & TICKS_MASK) - _HALF

    def ticks_add(a, b):
        return (a + b) & TICKS_MASK


__all__ = [
    "MICROPYTHON",
    "TICKS_MASK",
    "TICKS_PERIOD",
    "const",
    "ticks_add",
    "ticks_diff",
    "ticks_ms",
]
