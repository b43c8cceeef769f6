"""Sound level meter on the node: I2S blocks in, LAeq/LAmax/LAmin/LA10/LA90 readings out.

Each block (1/32 s) is A-weighted and squared in fixed point (kernel.py), then discarded: the
audio never leaves `buf`. Per block the fast (125 ms) exponential time weighting gives LAF, whose
maximum and minimum are LAmax and LAmin and whose distribution (0.5 dB bins) gives LA10 and LA90.
Blocks add up to a per-second LAeq (`last_second`), seconds add up to the reporting period.
Levels carry a per-unit calibration offset and are always flagged `indicative`; `overload` when
the microphone clipped, `below_floor` when the LAeq is under the microphone's noise floor,
`partial` when fewer seconds than the period were measured.

Sample rate 24 kHz: the lowest standard rate that puts the 8 kHz band (the top of the IEC test)
well under Nyquist; 16 kHz cannot represent 8 kHz at all, 48 kHz doubles the CPU cost for bands
the report does not use.

Usage::

    from spnode.noise.meter import NoiseMeter

    m = NoiseMeter(24000, sensitivity_dbfs=-26, offset_db=0.4, floor_dba=35)
    m.read(board.i2s("mic"))         # one block; call 32 times a second
    m.report(ts, 60, "noise")        # readings for the period; starts a new one
"""

import math
from array import array

from spnode.noise import kernel
from spnode.noise.aweight import design
from spnode.sensing import reading

BLOCKS_PER_S = 32
TAU_FAST = 0.125
BIN_DB = 0.5
NBINS = 300  # 0..150 dB
CLIP = 32767  # top-16-bit sample magnitude at which the microphone (or I2S word) clips


def _zeros(typecode, n):
    return array(typecode, (0 for _ in range(n)))


class NoiseMeter:
    def __init__(
        self, rate=24000, sensitivity_dbfs=-26.0, offset_db=0.0, floor_dba=None, fast=True
    ):
        if rate % BLOCKS_PER_S:
            raise ValueError("rate must be a multiple of %d" % BLOCKS_PER_S)
        self.rate = rate
        self.block = rate // BLOCKS_PER_S
        self.floor_dba = floor_dba
        self.offset_db = offset_db
        coeffs, gain = design(rate)
        co = []
        for i in range(0, 18, 3):
            co.append(coeffs[i + 1] + kernel.COFF)
            co.append(coeffs[i + 2] + kernel.COFF)
        self.co = array("i", co)
        self.st = array("i", (kernel.OFFSET for _ in range(12)))
        self.out = _zeros("i", 3)
        self.buf = _zeros("i", self.block)
        self.proc, self.path = kernel.select(fast)
        # level = 10 log10(mean square of 16-bit samples) + C: a 94 dB SPL sine reads
        # sensitivity_dbfs relative to a full-scale sine (peak 32768).
        ms94 = (32768 * 10 ** (sensitivity_dbfs / 20)) ** 2 / 2
        self._c = 94 - 10 * math.log10(ms94) + 20 * math.log10(gain)
        self._alpha = math.exp(-1 / (BLOCKS_PER_S * TAU_FAST))
        self.hist = _zeros("I", NBINS)
        self.last_second = None
        self._fast = None
        self._sec_e = 0.0
        self._sec_n = 0
        # the reporting period's figures, started again by reset()
        self._sum_e = 0.0
        self._seconds = 0
        self._max = None
        self._min = None
        self._over = False
        self._nblocks = 0

    def reset(self):
        """Start a new reporting period (the filter state carries on)."""
        for i in range(NBINS):
            self.hist[i] = 0
        self._sum_e = 0.0
        self._seconds = 0
        self._max = None
        self._min = None
        self._over = False
        self._nblocks = 0

    def set_offset(self, db):
        self.offset_db = db

    def level(self, energy):
        """dB for a mean square (16-bit units), calibrated."""
        if energy <= 0:
            return 0.0
        return max(0.0, 10 * math.log10(energy) + self._c + self.offset_db)

    def read(self, i2s):
        """Read and process one block from the microphone."""
        i2s.readinto(self.buf)
        self.process()

    def process(self, n=None):
        """Process the block in `buf` (n samples, default a whole block)."""
        if n is None:
            n = self.block
        out = self.out
        self.proc(self.buf, n, self.st, self.co, out)
        e = (out[0] * 65536 + out[1]) / n
        if out[2] >= CLIP:
            self._over = True
        f = self._fast
        f = e if f is None else f * self._alpha + e * (1 - self._alpha)
        self._fast = f
        if self._max is None or f > self._max:
            self._max = f
        if self._min is None or f < self._min:
            self._min = f
        self.add_level(self.level(f))
        self._sec_e += e
        self._sec_n += 1
        if self._sec_n == BLOCKS_PER_S:
            e1 = self._sec_e / BLOCKS_PER_S
            self.last_second = self.level(e1)
            self._sum_e += e1
            self._seconds += 1
            self._sec_e = 0.0
            self._sec_n = 0

    def add_level(self, db):
        """Count one fast-weighted level into the distribution (one block's worth of time)."""
        b = int(db / BIN_DB)
        self.hist[0 if b < 0 else NBINS - 1 if b >= NBINS else b] += 1
        self._nblocks += 1

    def percentile(self, exceeded):
        """The level exceeded `exceeded` (0..1) of the time: bin centre, dB; None if empty."""
        total = self._nblocks
        if total == 0:
            return None
        target = exceeded * total
        acc = 0
        for b in range(NBINS - 1, -1, -1):
            acc += self.hist[b]
            if acc >= target:
                return (b + 0.5) * BIN_DB
        return 0.0

    def report(self, ts, dur, src="noise"):
        """Readings for the period (LAeq, LAmax, LAmin, LA10, LA90); [] if nothing was measured.
        Starts a new period."""
        if self._seconds == 0:
            self.reset()
            return []
        flags = ["indicative"]
        laeq = self.level(self._sum_e / self._seconds)
        if self._over:
            flags.append("overload")
        if self.floor_dba is not None and laeq < self.floor_dba:
            flags.append("below_floor")
        if self._seconds < dur * 0.9:
            flags.append("partial")
        out = [
            reading(ts, "LAeq", laeq, dur, src, flags),
            reading(ts, "LAmax", self.level(self._max), dur, src, flags),
            reading(ts, "LAmin", self.level(self._min), dur, src, flags),
            reading(ts, "LA10", self.percentile(0.1), dur, src, flags),
            reading(ts, "LA90", self.percentile(0.9), dur, src, flags),
        ]
        self.reset()
        return out
