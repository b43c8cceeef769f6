"""Sensirion SPS30 particulate matter sensor over I2C (address 0x69).

Commands are 16-bit pointers; every 16-bit data word travels with a CRC-8 (polynomial 0x31,
init 0xFF). Measurements use the big-endian IEEE754 float output format.

Usage::

    from spnode.drivers.sps30 import Sps30

    pm = Sps30(i2c)               # no I/O yet
    pm.start()                    # fan and laser on; first values after about 1 s
    if pm.data_ready():
        v = pm.read()             # (pm1, pm25, pm4, pm10, nc05, nc1, nc25, nc4, nc10, size) or None
    pm.clean()                    # fan cleaning: 10 s at full speed, values invalid meanwhile
"""

import struct

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


_ADDR = const(0x69)
_CMD_START = const(0x0010)
_CMD_STOP = const(0x0104)
_CMD_READY = const(0x0202)
_CMD_READ = const(0x0300)
_CMD_SLEEP = const(0x1001)
_CMD_WAKE = const(0x1103)
_CMD_CLEAN = const(0x5607)
_CMD_PRODUCT = const(0xD002)
_CMD_STATUS = const(0xD206)
_CMD_RESET = const(0xD304)
_FORMAT_FLOAT = const(0x03)
_CLEAN_S = const(10)


def crc8(data, start=0, end=None):
    """Sensirion CRC-8: polynomial 0x31, init 0xFF, no reflection (crc8(b'\\xbe\\xef') == 0x92)."""
    crc = 0xFF
    if end is None:
        end = len(data)
    for i in range(start, end):
        crc ^= data[i]
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


class Sps30:
    def __init__(self, i2c, addr=_ADDR):
        self.i2c = i2c
        self.addr = addr
        self.fault = None
        self.crc_errors = 0
        self._cmd = bytearray(5)
        self._buf = bytearray(60)
        self._f = bytearray(4)

    def _write(self, cmd, arg=None):
        c = self._cmd
        c[0] = cmd >> 8
        c[1] = cmd & 0xFF
        n = 2
        if arg is not None:
            c[2] = arg >> 8
            c[3] = arg & 0xFF
            c[4] = crc8(c, 2, 4)
            n = 5
        try:
            self.i2c.writeto(self.addr, memoryview(c)[:n])
        except OSError as e:
            self.fault = "no answer on I2C (%s)" % e
            return False
        return True

    def _read(self, cmd, nbytes):
        """Send a pointer, read nbytes (words + CRCs); check every CRC. Returns a memoryview."""
        if not self._write(cmd):
            return None
        mv = memoryview(self._buf)[:nbytes]
        try:
            self.i2c.readfrom_into(self.addr, mv)
        except OSError as e:
            self.fault = "no answer on I2C (%s)" % e
            return None
        for i in range(0, nbytes, 3):
            if crc8(mv, i, i + 2) != mv[i + 2]:
                self.crc_errors += 1
                self.fault = "CRC error in word %d" % (i // 3)
                return None
        return mv

    def start(self):
        return self._write(_CMD_START, _FORMAT_FLOAT << 8)

    def stop(self):
        return self._write(_CMD_STOP)

    def sleep(self):
        return self._write(_CMD_SLEEP)

    def wake(self):
        # The first wake-up pulse only activates the interface; the chip NACKs it.
        try:
            self.i2c.writeto(self.addr, b"\xff")
        except OSError:
            pass
        return self._write(_CMD_WAKE)

    def clean(self):
        """Start fan cleaning (only while measuring). Values are invalid for _CLEAN_S seconds."""
        return self._write(_CMD_CLEAN)

    def reset(self):
        return self._write(_CMD_RESET)

    def product_type(self):
        mv = self._read(_CMD_PRODUCT, 12)
        if mv is None:
            return None
        out = bytearray()
        for i in range(0, 12, 3):
            for b in (mv[i], mv[i + 1]):
                if b:
                    out.append(b)
        return out.decode()

    def status(self):
        """Device status register (speed warning bit 21, laser bit 5, fan bit 4), or None."""
        mv = self._read(_CMD_STATUS, 6)
        if mv is None:
            return None
        return (mv[0] << 24) | (mv[1] << 16) | (mv[3] << 8) | mv[4]

    def data_ready(self):
        mv = self._read(_CMD_READY, 3)
        return mv is not None and mv[1] == 1

    def read(self):
        """The ten measured values (floats), or None with `fault` set."""
        mv = self._read(_CMD_READ, 60)
        if mv is None:
            return None
        f = self._f
        vals = []
        for i in range(0, 60, 6):
            f[0] = mv[i]
            f[1] = mv[i + 1]
            f[2] = mv[i + 3]
            f[3] = mv[i + 4]
            v = struct.unpack(">f", f)[0]
            if v != v or v < 0 or v > 65535:
                self.fault = "implausible value %r" % v
                return None
            vals.append(v)
        self.fault = None
        return vals

    def read_pm(self):
        """(pm1, pm25, pm10) in ug/m3, or None."""
        v = self.read()
        if v is None:
            return None
        return v[0], v[1], v[3]
