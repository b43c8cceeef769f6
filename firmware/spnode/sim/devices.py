"""Simulated SPS30, BME280 (I2C), PMS5003, LD2410 (UART) and a lamp current sense.

Usage::

    from spnode.sim.devices import Pms5003Device

    dev = board.uart("pm").attach(Pms5003Device(pm25=12))
    dev.fault = "crc"              # from now on every frame has a bad checksum
"""

import struct

from spnode.drivers import bme280 as _bme
from spnode.drivers.sps30 import crc8


def _words_with_crc(data):
    out = bytearray()
    for i in range(0, len(data), 2):
        w = data[i : i + 2]
        out.extend(w)
        out.append(crc8(w))
    return out


class Sps30Device:
    """SPS30 I2C protocol: pointer writes with CRC'd arguments, reads of CRC'd words."""

    def __init__(self, pm1=5.0, pm25=8.0, pm4=9.0, pm10=10.0):
        self.pm = [pm1, pm25, pm4, pm10]
        self.fault = None
        self.measuring = False
        self.cleanings = 0
        self.commands = []
        self._ptr = None
        self._step = 0

    @property
    def nack(self):
        return self.fault == "silent"

    def set_pm(self, pm1, pm25, pm4, pm10):
        self.pm = [pm1, pm25, pm4, pm10]

    def write(self, data):
        if len(data) < 2:
            return  # wake-up pulse
        cmd = (data[0] << 8) | data[1]
        self.commands.append(cmd)
        if len(self.commands) > 16:
            self.commands.pop(0)
        if len(data) == 5 and crc8(data[2:4]) != data[4]:
            return  # the chip ignores a command whose argument CRC is wrong
        if cmd == 0x0010 and len(data) == 5 and data[2] == 0x03:
            self.measuring = True
        elif cmd in (0x0104, 0x1001):
            self.measuring = False
        elif cmd == 0x5607 and self.measuring:
            self.cleanings += 1
        self._ptr = cmd

    def _payload(self):
        ptr = self._ptr
        if ptr == 0x0202:
            return bytes((0, 1 if self.measuring else 0))
        if ptr == 0x0300:
            if not self.measuring:
                return b""
            self._step += 1
            pm = self.pm
            if self.fault != "stuck":
                # a little variation around the set values, as a real sensor shows
                j = ((self._step * 7) % 5 - 2) * 0.01
                pm = [v * (1 + j) for v in pm]
            nc = [v * 6.5 for v in pm]
            vals = pm + [nc[0] * 0.8] + nc + [0.6]  # noqa: RUF005
            return struct.pack(">10f", *vals)
        if ptr == 0xD002:
            return b"00080000"
        if ptr == 0xD206:
            return b"\x00\x00\x00\x00"
        return b""

    def read(self, n):
        out = _words_with_crc(self._payload())
        if self.fault == "crc" and out:
            out[-1] ^= 0x5A
        if self.fault == "truncate":
            out = out[: len(out) // 2]
        return bytes(out[:n])


# Datasheet example calibration (BMP280/BME280 T and P) and typical H values.
BME_CALIB = (27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000)
BME_CALIB_H = (75, 362, 0, 313, 50, 30)


class Bme280Device:
    def __init__(self, temp_c=20.0, p_hpa=1013.25, rh=50.0, chip_id=0x60):
        self.regs = bytearray(256)
        self.regs[0xD0] = chip_id
        a = struct.pack("<HhhHhhhhhhhh", *BME_CALIB)
        self.regs[0x88 : 0x88 + 24] = a
        h1, h2, h3, h4, h5, h6 = BME_CALIB_H
        self.regs[0xA1] = h1
        self.regs[0xE1:0xE4] = struct.pack("<hB", h2, h3)
        self.regs[0xE4] = (h4 >> 4) & 0xFF
        self.regs[0xE5] = (h4 & 0x0F) | ((h5 & 0x0F) << 4)
        self.regs[0xE6] = (h5 >> 4) & 0xFF
        self.regs[0xE7] = h6 & 0xFF
        self.fault = None
        self.forced = 0
        self._ptr = 0
        self.calib = _bme.parse_calibration(self.regs[0x88:0xA2], self.regs[0xE1:0xE8])
        self.set_env(temp_c, p_hpa, rh)
        r = self.regs  # power-on reset values of the data registers: no measurement yet
        r[0xF7], r[0xF8], r[0xF9], r[0xFA], r[0xFB], r[0xFC], r[0xFD], r[0xFE] = (
            0x80,
            0,
            0,
            0x80,
            0,
            0,
            0x80,
            0,
        )

    @property
    def nack(self):
        return self.fault == "silent"

    def set_raw(self, adc_t, adc_p, adc_h):
        self._raw = (adc_t, adc_p, adc_h)

    @staticmethod
    def _search(f, target, lo, hi, rising=True):
        while lo < hi:
            mid = (lo + hi) // 2
            v = f(mid)
            if (v < target) == rising:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def set_env(self, temp_c, p_hpa, rh):
        """Find the raw ADC values the compensation turns into these readings."""
        c = self.calib
        adc_t = self._search(
            lambda a: _bme.temperature(_bme.t_fine(c, a)), int(temp_c * 100), 0, 0xFFFFF
        )
        tf = _bme.t_fine(c, adc_t)
        adc_p = self._search(
            lambda a: _bme.pressure(c, tf, a), int(p_hpa * 25600), 0, 0xFFFFF, rising=False
        )
        adc_h = self._search(lambda a: _bme.humidity(c, tf, a), int(rh * 1024), 0, 0xFFFF)
        self.set_raw(adc_t, adc_p, adc_h)

    def write(self, data):
        self._ptr = data[0]
        for i in range(1, len(data)):
            reg = data[0] + i - 1
            self.regs[reg] = data[i]
            if reg == 0xF4 and data[i] & 3 == 1:
                self.forced += 1
                self._measure()

    def _measure(self):
        t, p, h = (0x80000, 0x80000, 0x8000) if self.fault == "stuck" else self._raw
        r = self.regs
        r[0xF7], r[0xF8], r[0xF9] = p >> 12, (p >> 4) & 0xFF, (p & 0xF) << 4
        r[0xFA], r[0xFB], r[0xFC] = t >> 12, (t >> 4) & 0xFF, (t & 0xF) << 4
        r[0xFD], r[0xFE] = h >> 8, h & 0xFF

    def read(self, n):
        data = bytes(self.regs[self._ptr : self._ptr + n])
        if self.fault == "truncate":
            data = data[: n // 2]
        return data


def pms5003_frame(pm1, pm25, pm10, corrupt=False):
    words = [pm1, pm25, pm10, pm1, pm25, pm10, 1200, 350, 80, 10, 2, 1, 0]
    f = bytearray(b"\x42\x4d\x00\x1c") + struct.pack(">13H", *words)
    s = sum(f) & 0xFFFF
    if corrupt:
        s ^= 0x0101
    f.extend(struct.pack(">H", s))
    return bytes(f)


class Pms5003Device:
    """Sends a frame each time the UART is polled (active mode) or on request (passive mode)."""

    def __init__(self, pm1=5, pm25=8, pm10=10):
        self.pm = (pm1, pm25, pm10)
        self.fault = None
        self.active = True
        self.awake = True
        self.commands = []
        self.garbage = b""  # bytes to send before the next frame (line noise)
        self._out = bytearray()
        self._step = 0
        self._requested = 0

    def write(self, data):
        if len(data) != 7 or data[0] != 0x42 or data[1] != 0x4D:
            return
        if (sum(data[:5]) & 0xFFFF) != (data[5] << 8) | data[6]:
            return
        cmd, val = data[2], data[4]
        self.commands.append((cmd, val))
        if len(self.commands) > 16:
            self.commands.pop(0)
        if cmd == 0xE1:
            self.active = val == 1
            self._out.extend(b"\x42\x4d\x00\x04\xe1" + bytes((val,)))
            s = (0x42 + 0x4D + 4 + 0xE1 + val) & 0xFFFF
            self._out.extend(bytes((s >> 8, s & 0xFF)))
        elif cmd == 0xE4:
            self.awake = val == 1
        elif cmd == 0xE2:
            self._requested += 1

    def _frame(self):
        self._step += 1
        pm = self.pm
        if self.fault != "stuck":
            j = self._step % 3 - 1
            pm = tuple(max(0, v + j) for v in pm)
        f = pms5003_frame(pm[0], pm[1], pm[2], corrupt=self.fault == "crc")
        if self.fault == "truncate":
            f = f[:20]
        return f

    def output(self, max_bytes):
        if self.fault == "silent":
            self._out = bytearray()
            return b""
        if len(self._out) < 32 and self.awake and (self.active or self._requested):
            if self._requested:
                self._requested -= 1
            self._out.extend(self.garbage)
            self.garbage = b""
            self._out.extend(self._frame())
        out = bytes(self._out[:max_bytes])
        self._out = self._out[max_bytes:]
        return out


def ld2410_frame(state, move_cm=0, move_energy=0, still_cm=0, still_energy=0, corrupt=False):
    detect = max(move_cm, still_cm)
    data = bytes(
        (
            0x02,
            0xAA,
            state,
            move_cm & 0xFF,
            move_cm >> 8,
            move_energy,
            still_cm & 0xFF,
            still_cm >> 8,
            still_energy,
            detect & 0xFF,
            detect >> 8,
            0x55,
            0x00,
        )
    )
    tail = b"\xf8\xf7\xf6\xf5" if not corrupt else b"\xf8\xf7\xf6\x00"
    return b"\xf4\xf3\xf2\xf1" + bytes((len(data), 0)) + data + tail


class Ld2410Device:
    """Sends one report frame per poll with the current target."""

    def __init__(self):
        self.target = (0, 0, 0, 0, 0)  # state, move cm, move energy, still cm, still energy
        self.fault = None
        self.garbage = b""

    def set_target(self, state, move_cm=0, move_energy=0, still_cm=0, still_energy=0):
        self.target = (state, move_cm, move_energy, still_cm, still_energy)

    def write(self, data):
        pass

    def output(self, max_bytes):
        if self.fault == "silent":
            return b""
        f = ld2410_frame(*self.target, corrupt=self.fault == "crc")
        if self.fault == "truncate":
            f = f[:12]
        out = self.garbage + f
        self.garbage = b""
        return out[:max_bytes]
