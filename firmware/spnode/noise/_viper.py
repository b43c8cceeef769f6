"""Viper fast path of noise/kernel.py: the same fixed-point arithmetic, compiled to machine code.

Only imported on MicroPython (kernel.select); CPython has no viper. Generated from kernel.process
by hand-keeping the same statements; tests/mp/noise_check.py asserts both give identical numbers.
"""

# ruff: noqa: F821
import micropython
from micropython import const

_OFF = const(1 << 29)
_COFF = const(1 << 17)
_CLAMP = const(46340)


@micropython.viper
def process(buf: ptr32, n: int, st: ptr32, co: ptr32, out: ptr32):
    hi = 0
    lo = 0
    peak = 0
    s0 = int(st[0]) - _OFF
    s1 = int(st[1]) - _OFF
    s2 = int(st[2]) - _OFF
    s3 = int(st[3]) - _OFF
    s4 = int(st[4]) - _OFF
    s5 = int(st[5]) - _OFF
    s6 = int(st[6]) - _OFF
    s7 = int(st[7]) - _OFF
    s8 = int(st[8]) - _OFF
    s9 = int(st[9]) - _OFF
    s10 = int(st[10]) - _OFF
    s11 = int(st[11]) - _OFF
    a0 = int(co[0]) - _COFF
    b0 = int(co[1]) - _COFF
    a1 = int(co[2]) - _COFF
    b1 = int(co[3]) - _COFF
    a2 = int(co[4]) - _COFF
    b2 = int(co[5]) - _COFF
    a3 = int(co[6]) - _COFF
    b3 = int(co[7]) - _COFF
    a4 = int(co[8]) - _COFF
    b4 = int(co[9]) - _COFF
    a5 = int(co[10]) - _COFF
    b5 = int(co[11]) - _COFF
    for i in range(n):
        x = (int(buf[i]) >> 16) & 0xFFFF
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
        if e > _CLAMP:
            e = _CLAMP
        elif e < -_CLAMP:
            e = -_CLAMP
        e = e * e
        hi += e >> 16
        lo += e & 0xFFFF
    st[0] = s0 + _OFF
    st[1] = s1 + _OFF
    st[2] = s2 + _OFF
    st[3] = s3 + _OFF
    st[4] = s4 + _OFF
    st[5] = s5 + _OFF
    st[6] = s6 + _OFF
    st[7] = s7 + _OFF
    st[8] = s8 + _OFF
    st[9] = s9 + _OFF
    st[10] = s10 + _OFF
    st[11] = s11 + _OFF
    out[0] = hi
    out[1] = lo
    out[2] = peak
