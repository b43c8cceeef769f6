"""Plantower PMS5003 particulate matter sensor on a UART (9600 8N1).

Data frames are 32 bytes: 0x42 0x4D, frame length (28), 13 big-endian words, checksum (sum of
the first 30 bytes). Commands are 7 bytes: 0x42 0x4D CMD DATAH DATAL CHECKH CHECKL. The parser is
incremental: bytes may arrive in any split, garbage and truncated frames are skipped.

Usage::

    from spnode.drivers.pms5003 import Pms5003

    pm = Pms5003(uart)              # no I/O yet
    pm.start(passive=False)         # wake up, active mode: a frame about every second
    v = pm.read(now_ms)             # (pm1, pm25, pm10) atmospheric, ug/m3; None if no new frame
    pm.fault                        # None, or why there is no value (silence, checksums)
"""

from spnode.compat import const, ticks_diff

_FRAME = const(32)
_CMD_MODE = const(0xE1)  # data 0 passive, 1 active
_CMD_READ = const(0xE2)  # passive mode: send one frame
_CMD_SLEEP = const(0xE4)  # data 0 sleep, 1 wake up
_TIMEOUT_MS = const(3000)  # active mode sends every 200-2300 ms


def checksum(data, n):
    s = 0
    for i in range(n):
        s += data[i]
    return s & 0xFFFF


def command(cmd, data=0):
    """The 7 command bytes."""
    b = bytearray((0x42, 0x4D, cmd, data >> 8, data & 0xFF, 0, 0))
    s = checksum(b, 5)
    b[5] = s >> 8
    b[6] = s & 0xFF
    return b


class Pms5003:
    def __init__(self, uart, timeout_ms=_TIMEOUT_MS):
        self.uart = uart
        self.timeout_ms = timeout_ms
        self.fault = None
        self.frames = 0
        self.errors = 0
        self.values = None  # last frame's 13 words
        self._frame = bytearray(_FRAME)
        self._n = 0
        self._rx = bytearray(64)
        self._new = False
        self._last_ms = None
        self._since_ms = None

    def start(self, passive=False, now_ms=0):
        self.uart.write(command(_CMD_SLEEP, 1))
        self.uart.write(command(_CMD_MODE, 0 if passive else 1))
        self._since_ms = now_ms
        self._last_ms = None

    def stop(self):
        self.uart.write(command(_CMD_SLEEP, 0))
        self._since_ms = None

    def request(self):
        """Passive mode: ask for one frame."""
        self.uart.write(command(_CMD_READ))

    def feed(self, data, now_ms=0):
        """Parse received bytes; returns the number of complete, valid frames found."""
        good = 0
        f = self._frame
        for b in data:
            n = self._n
            if n < 0:  # inside an 8-byte command reply
                self._n = n + 1
                continue
            if (n == 0 and b != 0x42) or (n == 1 and b != 0x4D):
                self._n = 1 if b == 0x42 else 0
                continue
            f[n] = b
            n += 1
            self._n = n
            if n == 4:
                length = (f[2] << 8) | f[3]
                if length == 4:  # 8-byte command reply: 42 4D 00 04 CMD DATA CHK CHK
                    self._n = -4
                elif length != _FRAME - 4:
                    self.errors += 1
                    good += self._resync(now_ms)
            elif n == _FRAME:
                if checksum(f, 30) == (f[30] << 8) | f[31]:
                    words = []
                    for i in range(4, 30, 2):
                        words.append((f[i] << 8) | f[i + 1])
                    self._n = 0
                    self.values = words
                    self.frames += 1
                    self._new = True
                    self._last_ms = now_ms
                    good += 1
                else:
                    self.errors += 1
                    self.fault = "checksum error"
                    good += self._resync(now_ms)
        return good

    def _resync(self, now_ms):
        # A frame cut short is followed by the next one: look for a header inside what was
        # taken as this frame and parse from there (error path only, so a small allocation).
        f = self._frame
        n = self._n
        self._n = 0
        for j in range(1, n):
            if f[j] == 0x42 and (j + 1 == n or f[j + 1] == 0x4D):
                return self.feed(bytes(f[j:n]), now_ms)
        return 0

    def poll(self, now_ms=0):
        """Read whatever the UART holds and parse it."""
        while True:
            n = self.uart.readinto(self._rx)
            if not n:
                break
            self.feed(memoryview(self._rx)[:n], now_ms)

    def read(self, now_ms=0):
        """(pm1, pm25, pm10) atmospheric ug/m3 from a frame not returned before, or None."""
        self.poll(now_ms)
        if self._new:
            self._new = False
            self.fault = None
            v = self.values
            return v[3], v[4], v[5]
        ref = self._last_ms if self._last_ms is not None else self._since_ms
        if ref is not None and ticks_diff(now_ms, ref) > self.timeout_ms:
            self.fault = "no valid frame for %d ms" % ticks_diff(now_ms, ref)
        return None

    def read_pm(self, now_ms=0):
        return self.read(now_ms)
