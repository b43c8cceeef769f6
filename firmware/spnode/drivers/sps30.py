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


# The CRC by table (one lookup a byte instead of eight shifts): a bytes constant stays in flash
# (ROMFS or frozen), and the simulator, reading thousands of SPS30s, spent most of its time in
# the bitwise loop.
_CRC = (
    b"\x00\x31\x62\x53\xc4\xf5\xa6\x97\xb9\x88\xdb\xea\x7d\x4c\x1f\x2e"
    b"\x43\x72\x21\x10\x87\xb6\xe5\xd4\xfa\xcb\x98\xa9\x3e\x0f\x5c\x6d"
    b"\x86\xb7\xe4\xd5\x42\x73\x20\x11\x3f\x0e\x5d\x6c\xfb\xca\x99\xa8"
    b"\xc5\xf4\xa7\x96\x01\x30\x63\x52\x7c\x4d\x1e\x2f\xb8\x89\xda\xeb"
    b"\x3d\x0c\x5f\x6e\xf9\xc8\x9b\xaa\x84\xb5\xe6\xd7\x40\x71\x22\x13"
    b"\x7e\x4f\x1c\x2d\xba\x8b\xd8\xe9\xc7\xf6\xa5\x94\x03\x32\x61\x50"
    b"\xbb\x8a\xd9\xe8\x7f\x4e\x1d\x2c\x02\x33\x60\x51\xc6\xf7\xa4\x95"
    b"\xf8\xc9\x9a\xab\x3c\x0d\x5e\x6f\x41\x70\x23\x12\x85\xb4\xe7\xd6"
    b"\x7a\x4b\x18\x29\xbe\x8f\xdc\xed\xc3\xf2\xa1\x90\x07\x36\x65\x54"
    b"\x39\x08\x5b\x6a\xfd\xcc\x9f\xae\x80\xb1\xe2\xd3\x44\x75\x26\x17"
    b"\xfc\xcd\x9e\xaf\x38\x09\x5a\x6b\x45\x74\x27\x16\x81\xb0\xe3\xd2"
    b"\xbf\x8e\xdd\xec\x7b\x4a\x19\x28\x06\x37\x64\x55\xc2\xf3\xa0\x91"
    b"\x47\x76\x25\x14\x83\xb2\xe1\xd0\xfe\xcf\x9c\xad\x3a\x0b\x58\x69"
    b"\x04\x35\x66\x57\xc0\xf1\xa2\x93\xbd\x8c\xdf\xee\x79\x48\x1b\x2a"
    b"\xc1\xf0\xa3\x92\x05\x34\x67\x56\x78\x49\x1a\x2b\xbc\x8d\xde\xef"
    b"\x82\xb3\xe0\xd1\x46\x77\x24\x15\x3b\x0a\x59\x68\xff\xce\x9d\xac"
)


def crc8(data, start=0, end=None):
    """Sensirion CRC-8: polynomial 0x31, init 0xFF, no reflection (crc8(b'\\xbe\\xef') == 0x92)."""
    t = _CRC
    crc = 0xFF
    if end is None:
        end = len(data)
    for i in range(start, end):
        crc = t[crc ^ data[i]]
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
