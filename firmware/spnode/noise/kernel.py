"""The inner loop: A-weight a block of I2S samples and sum the squared output.

Fixed point, so that the viper fast path (noise/_viper.py, 32-bit machine words on the ESP32)
and this plain-Python path give bit-identical numbers. Per sample:

    x = the top 16 bits of the 32-bit I2S frame (INMP441/ICS-43434: 24-bit data, left-justified)
    v = x << 8                                   (8 fractional bits)
    6 x  y = a*y1 + b*(v -/+ x1)                 (Q16 coefficients, split multiply below)
    e = round(y / 256), clamped to +-46340; energy += e*e (split in hi/lo 16-bit sums)

`mulq(v, c) = ((v >> 14) * c >> 2) + ((v & 0x3FFF) * c >> 16)` is v*c/2**16 without a 32-bit
overflow for |v| < 2**29 and |c| <= 2**16. The worst-case gain of the cascade (the L1 norm of its
impulse response, about 34) keeps a full-scale 16-bit input under 2**28.

State and coefficients are stored with a positive offset (OFFSET, COFF) so that a 32-bit load
needs no sign extension on 64-bit hosts either. out = [energy_hi, energy_lo, peak |x|].

Usage::

    from spnode.noise import kernel

    proc = kernel.select()           # viper on MicroPython when available, else plain
    proc(buf, n, state, coeffs, out) # buf: array('i') of I2S frames
"""

OFFSET = 1 << 29
COFF = 1 << 17
CLAMP = 46340


def process(buf, n, st, co, out):
    """Plain-Python path (CPython and MicroPython without the native emitter)."""
    hi = 0
    lo = 0
    peak = 0
    s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11 = [st[i] - OFFSET for i in range(12)]
    a0, b0, a1, b1, a2, b2, a3, b3, a4, b4, a5, b5 = [co[i] - COFF for i in range(12)]
    for i in range(n):
        x = (buf[i] >> 16) & 0xFFFF
        if x >= 0x8000:
            x -= 0x10000
        ax = -x if x < 0 else x
        if ax > peak:
            peak = ax
        v = x << 8
        d = v - s0
        s0 = v
        v = (
            (((s1 >> 14) * a0) >> 2)
            + (((s1 & 0x3FFF) * a0) >> 16)
            + (((d >> 14) * b0) >> 2)
            + (((d & 0x3FFF) * b0) >> 16)
        )
        s1 = v
        d = v - s2
        s2 = v
        v = (
            (((s3 >> 14) * a1) >> 2)
            + (((s3 & 0x3FFF) * a1) >> 16)
            + (((d >> 14) * b1) >> 2)
            + (((d & 0x3FFF) * b1) >> 16)
        )
        s3 = v
        d = v - s4
        s4 = v
        v = (
            (((s5 >> 14) * a2) >> 2)
            + (((s5 & 0x3FFF) * a2) >> 16)
            + (((d >> 14) * b2) >> 2)
            + (((d & 0x3FFF) * b2) >> 16)
        )
        s5 = v
        d = v - s6
        s6 = v
        v = (
            (((s7 >> 14) * a3) >> 2)
            + (((s7 & 0x3FFF) * a3) >> 16)
            + (((d >> 14) * b3) >> 2)
            + (((d & 0x3FFF) * b3) >> 16)
        )
        s7 = v
        d = v + s8
        s8 = v
        v = (
            (((s9 >> 14) * a4) >> 2)
            + (((s9 & 0x3FFF) * a4) >> 16)
            + (((d >> 14) * b4) >> 2)
            + (((d & 0x3FFF) * b4) >> 16)
        )
        s9 = v
        d = v + s10
        s10 = v
        v = (
            (((s11 >> 14) * a5) >> 2)
            + (((s11 & 0x3FFF) * a5) >> 16)
            + (((d >> 14) * b5) >> 2)
            + (((d & 0x3FFF) * b5) >> 16)
        )
        s11 = v
        e = (v + 128) >> 8  # rounded: a truncation bias would add 0.25 LSB² of energy
        if e > CLAMP:
            e = CLAMP
        elif e < -CLAMP:
            e = -CLAMP
        e = e * e
        hi += e >> 16
        lo += e & 0xFFFF
    for i, v in enumerate((s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11)):
        st[i] = v + OFFSET
    out[0] = hi
    out[1] = lo
    out[2] = peak


def select(prefer_fast=True):
    """The fast path when this interpreter can run it, else the plain one; (function, name)."""
    if prefer_fast:
        try:
            from spnode.noise._viper import process as fast

            return fast, "viper"
        except (ImportError, SyntaxError, ValueError, NameError):
            pass
    return process, "plain"
