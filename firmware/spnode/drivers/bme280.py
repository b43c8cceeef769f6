"""Bosch BME280 temperature, humidity and pressure sensor over I2C (0x76 or 0x77).

Forced mode (one measurement per request, the sensor sleeps in between: no self-heating), x1
oversampling, and the datasheet's integer compensation (section 4.2.3, BME280_compensate_T_int32,
BME280_compensate_P_int64, bme280_compensate_H_int32) with the chip's calibration registers.

Usage::

    from spnode.drivers.bme280 import Bme280

    env = Bme280(i2c)                  # no I/O yet
    env.begin()                        # check chip id, read calibration
    env.trigger()                      # start one forced measurement (about 10 ms)
    t, p, h = env.read()               # degC, hPa, %RH -- or None with env.fault set
"""

import struct

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


_ADDR = const(0x76)
_REG_CALIB_A = const(0x88)  # 26 bytes
_REG_CHIP_ID = const(0xD0)
_REG_RESET = const(0xE0)
_REG_CALIB_B = const(0xE1)  # 7 bytes
_REG_CTRL_HUM = const(0xF2)
_REG_STATUS = const(0xF3)
_REG_CTRL_MEAS = const(0xF4)
_REG_CONFIG = const(0xF5)
_REG_DATA = const(0xF7)  # 8 bytes: press[3], temp[3], hum[2]
_CHIP_ID = const(0x60)
_SKIPPED_20 = const(0x80000)  # what a skipped or never-run measurement reads
_SKIPPED_16 = const(0x8000)


def parse_calibration(a, b):
    """(T1..T3, P1..P9, H1..H6) from the two calibration blocks (26 and 7 bytes)."""
    t_p = struct.unpack("<HhhHhhhhhhhh", bytes(a[:24]))
    h2, h3 = struct.unpack("<hB", bytes(b[:3]))
    h4 = (b[3] << 4) | (b[4] & 0x0F)
    h5 = (b[5] << 4) | (b[4] >> 4)
    if h4 & 0x800:
        h4 -= 0x1000
    if h5 & 0x800:
        h5 -= 0x1000
    h6 = b[6] - 256 if b[6] & 0x80 else b[6]
    return t_p + (a[25], h2, h3, h4, h5, h6)  # noqa: RUF005


def _tdiv(a, b):
    # C integer division truncates toward zero
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def t_fine(c, adc_t):
    var1 = (((adc_t >> 3) - (c[0] << 1)) * c[1]) >> 11
    x = (adc_t >> 4) - c[0]
    var2 = (((x * x) >> 12) * c[2]) >> 14
    return var1 + var2


def temperature(tf):
    """0.01 degC units."""
    return (tf * 5 + 128) >> 8


def pressure(c, tf, adc_p):
    """Pa in Q24.8 (divide by 256), or 0 when the calibration would divide by zero."""
    var1 = tf - 128000
    var2 = var1 * var1 * c[8]
    var2 += (var1 * c[7]) << 17
    var2 += c[6] << 35
    var1 = ((var1 * var1 * c[5]) >> 8) + ((var1 * c[4]) << 12)
    var1 = (((1 << 47) + var1) * c[3]) >> 33
    if var1 == 0:
        return 0
    p = 1048576 - adc_p
    p = _tdiv(((p << 31) - var2) * 3125, var1)
    var1 = (c[11] * (p >> 13) * (p >> 13)) >> 25
    var2 = (c[10] * p) >> 19
    return ((p + var1 + var2) >> 8) + (c[9] << 4)


def humidity(c, tf, adc_h):
    """%RH in Q22.10 (divide by 1024)."""
    h1, h2, h3, h4, h5, h6 = c[12], c[13], c[14], c[15], c[16], c[17]
    v = tf - 76800
    v = (((adc_h << 14) - (h4 << 20) - (h5 * v)) + 16384) >> 15
    v = v * (
        (
            (
                (((((tf - 76800) * h6) >> 10) * ((((tf - 76800) * h3) >> 11) + 32768)) >> 10)
                + 2097152
            )
            * h2
            + 8192
        )
        >> 14
    )
    v -= ((((v >> 15) * (v >> 15)) >> 7) * h1) >> 4
    v = max(0, min(v, 419430400))
    return v >> 12


class Bme280:
    def __init__(self, i2c, addr=_ADDR):
        self.i2c = i2c
        self.addr = addr
        self.fault = None
        self.calib = None
        self._data = bytearray(8)
        self._one = bytearray(1)

    def _reg(self, reg):
        self.i2c.readfrom_mem_into(self.addr, reg, self._one)
        return self._one[0]

    def begin(self):
        """Check the chip id and read the calibration. False (and fault) when it fails."""
        try:
            chip = self._reg(_REG_CHIP_ID)
            if chip != _CHIP_ID:
                self.fault = "chip id 0x%02x, not a BME280 (0x60)" % chip
                return False
            a = bytearray(26)
            b = bytearray(7)
            self.i2c.readfrom_mem_into(self.addr, _REG_CALIB_A, a)
            self.i2c.readfrom_mem_into(self.addr, _REG_CALIB_B, b)
        except OSError as e:
            self.fault = "no answer on I2C (%s)" % e
            return False
        self.calib = parse_calibration(a, b)
        if self.calib[0] == 0 or self.calib[3] == 0:
            self.fault = "calibration registers empty"
            self.calib = None
            return False
        self.fault = None
        return True

    def trigger(self):
        """Start one forced-mode measurement (T, P, H oversampling x1)."""
        try:
            self.i2c.writeto_mem(self.addr, _REG_CTRL_HUM, b"\x01")
            self.i2c.writeto_mem(self.addr, _REG_CTRL_MEAS, b"\x25")
        except OSError as e:
            self.fault = "no answer on I2C (%s)" % e
            return False
        return True

    def read_raw(self):
        """(adc_t, adc_p, adc_h) or None."""
        if self.calib is None and not self.begin():
            return None
        try:
            if self._reg(_REG_STATUS) & 0x08:
                self.fault = "measurement still running"
                return None
            self.i2c.readfrom_mem_into(self.addr, _REG_DATA, self._data)
        except OSError as e:
            self.fault = "no answer on I2C (%s)" % e
            return None
        d = self._data
        adc_p = (d[0] << 12) | (d[1] << 4) | (d[2] >> 4)
        adc_t = (d[3] << 12) | (d[4] << 4) | (d[5] >> 4)
        adc_h = (d[6] << 8) | d[7]
        if adc_t == _SKIPPED_20 or adc_p == _SKIPPED_20 or adc_h == _SKIPPED_16:
            self.fault = "no measurement data (skipped or not triggered)"
            return None
        return adc_t, adc_p, adc_h

    def read(self):
        """(degC, hPa, %RH) or None with `fault` set."""
        raw = self.read_raw()
        if raw is None:
            return None
        c = self.calib
        tf = t_fine(c, raw[0])
        t = temperature(tf) / 100
        p = pressure(c, tf, raw[1]) / 25600
        h = humidity(c, tf, raw[2]) / 1024
        if not (-40 <= t <= 85 and 300 <= p <= 1100):
            self.fault = "implausible reading %.1f degC %.1f hPa" % (t, p)
            return None
        self.fault = None
        return t, p, h
