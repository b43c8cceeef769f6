"""Passive infrared motion detector on a GPIO: the interrupt counts, a task consumes the count.

The IRQ handler allocates nothing (hard-IRQ safe on the ESP32): it compares two small ints and
increments a counter. Edges within `debounce_ms` of the last counted one are ignored (PIR outputs
bounce and re-trigger). The counter only ever grows, so reading it from a task needs no lock.

Usage::

    from spnode.drivers.pir import Pir

    pir = Pir(board.pin("pir"), board.ticks_ms, debounce_ms=200)
    pir.start()                  # attach the IRQ (rising edge)
    n = pir.take()               # detections since the last take()
"""

from spnode.compat import const, ticks_diff

IRQ_RISING = const(1)
_MASK = const(0x3FFFFFFF)  # the counter stays a small int (no allocation in the IRQ)


class Pir:
    def __init__(self, pin, ticks_ms, debounce_ms=200):
        self.pin = pin
        self.ticks_ms = ticks_ms
        self.debounce_ms = debounce_ms
        self.fault = None
        self._count = 0
        self._taken = 0
        self._last = 0
        self._armed = False  # first edge always counts
        self._handler = self._irq  # bound once: no allocation per interrupt

    def start(self):
        self.pin.irq(handler=self._handler, trigger=IRQ_RISING)

    def stop(self):
        self.pin.irq(handler=None)

    def _irq(self, pin):
        t = self.ticks_ms()
        if self._armed and ticks_diff(t, self._last) < self.debounce_ms:
            return
        self._armed = True
        self._last = t
        self._count = (self._count + 1) & _MASK

    def take(self):
        """Detections since the previous call."""
        c = self._count
        n = (c - self._taken) & _MASK
        self._taken = c
        return n

    def level(self):
        return self.pin.value()
