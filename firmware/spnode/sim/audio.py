"""Simulated I2S microphone: sines or noise at a given sound level, as 32-bit I2S frames with
24-bit left-justified data (INMP441/ICS-43434), sensitivity -26 dBFS at 94 dB SPL.

Usage::

    from spnode.sim.audio import Tone

    board.i2s("mic").attach(Tone(1000, 74.0, rate=24000))   # a 1 kHz sine at 74 dB SPL
"""

import math
from array import array

FS24 = 1 << 23


def amplitude(db_spl, sensitivity_dbfs=-26.0):
    """Peak amplitude (24-bit units) of a sine at db_spl."""
    return FS24 * 10 ** ((db_spl - 94 + sensitivity_dbfs) / 20)


class Tone:
    """A sine (freq Hz) at db_spl; `fault`: "silent" (zeros), "stuck" (a constant), "clip"."""

    def __init__(self, freq, db_spl, rate=24000, sensitivity_dbfs=-26.0):
        self.rate = rate
        self.freq = freq
        self.amp = amplitude(db_spl, sensitivity_dbfs)
        self.fault = None
        self._phase = 0.0

    def set(self, freq=None, db_spl=None, sensitivity_dbfs=-26.0):
        if freq is not None:
            self.freq = freq
        if db_spl is not None:
            self.amp = amplitude(db_spl, sensitivity_dbfs)

    def fill(self, buf, n):
        if self.fault in ("silent", "stuck"):
            v = 0 if self.fault == "silent" else 0x123400
            for i in range(n):
                buf[i] = v
            return
        step = 2 * math.pi * self.freq / self.rate
        ph = self._phase
        amp = self.amp
        lim = FS24 - 1
        sin = math.sin
        for i in range(n):
            v = int(amp * sin(ph))
            if v > lim:
                v = lim
            elif v < -lim:
                v = -lim
            buf[i] = v << 8
            ph += step
        self._phase = ph % (2 * math.pi)


class Noise:
    """Uniform white noise of RMS level db_spl (unweighted), reproducible (xorshift)."""

    def __init__(self, db_spl, sensitivity_dbfs=-26.0, seed=12345):
        # a uniform variable on [-A, A] has RMS A/sqrt(3); a sine of that level has RMS amp/sqrt 2
        self.a = amplitude(db_spl, sensitivity_dbfs) / math.sqrt(2) * math.sqrt(3)
        self._s = seed
        self.fault = None

    def fill(self, buf, n):
        s = self._s
        a = self.a
        for i in range(n):
            s ^= (s << 13) & 0xFFFFFFFF
            s ^= s >> 17
            s ^= (s << 5) & 0xFFFFFFFF
            v = int(a * ((s & 0xFFFF) / 32768.0 - 1.0))
            buf[i] = v << 8
        self._s = s


class Looped:
    """Another source's first ``n`` samples played over and over, copied into each block as the
    board's DMA would: a Tone computes every sample in Python, too slow to feed a node's
    microphone 32 blocks a second on a clock 20 times real time. For a Tone, ``n`` a whole
    number of its periods (24 samples for 1 kHz at 24 kHz) keeps the sine unbroken."""

    def __init__(self, source, n):
        self.cycle = memoryview(array("i", bytes(4 * n)))
        source.fill(self.cycle, n)
        self.fault = None
        self._pos = 0

    def fill(self, buf, n):
        cycle = self.cycle
        m = len(cycle)
        out = memoryview(buf)
        pos = self._pos
        i = 0
        while i < n:
            k = min(m - pos, n - i)
            out[i : i + k] = cycle[pos : pos + k]
            i += k
            pos = (pos + k) % m
        self._pos = pos
