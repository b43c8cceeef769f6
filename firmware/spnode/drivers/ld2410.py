"""HLK-LD2410 24 GHz presence radar on a UART (256000 8N1).

Report frames: F4 F3 F2 F1, length (2 bytes LE), data, F8 F7 F6 F5. Basic-mode data (13 bytes):
type 0x02, head 0xAA, target state (0 none, 1 moving, 2 still, 3 both), moving distance (cm, LE),
moving energy, still distance (cm, LE), still energy, detection distance (cm, LE), tail 0x55,
check 0x00. Engineering mode (type 0x01) adds gate energies after the same 11 bytes. Command
acknowledgements (FD FC FB FA ... 04 03 02 01) are skipped. The parser is incremental and resyncs
on garbage or truncated frames.

Usage::

    from spnode.drivers.ld2410 import Ld2410

    radar = Ld2410(board.uart("radar"))
    radar.poll(now_ms)              # parse what arrived (the radar sends about 10 frames/s)
    radar.state, radar.move_cm, radar.still_cm
    n = radar.take()                # count of new presence onsets since the last take()
"""

from spnode.compat import const, ticks_diff

_MAX_LEN = const(64)
_TIMEOUT_MS = const(1000)
_HEAD = b"\xf4\xf3\xf2\xf1"
_TAIL = b"\xf8\xf7\xf6\xf5"
_NONE = const(0)
_MOVING = const(1)
_STILL = const(2)
_BOTH = const(3)


class Ld2410:
    def __init__(self, uart, timeout_ms=_TIMEOUT_MS):
        self.uart = uart
        self.timeout_ms = timeout_ms
        self.fault = None
        self.frames = 0
        self.errors = 0
        self.state = None
        self.move_cm = self.move_energy = self.still_cm = self.still_energy = self.detect_cm = 0
        self._buf = bytearray(_MAX_LEN + 10)
        self._n = 0
        self._len = 0
        self._rx = bytearray(64)
        self._onsets = 0
        self._taken = 0
        self._last_ms = None
        self._since_ms = None

    def start(self, now_ms=0):
        self._since_ms = now_ms

    def feed(self, data, now_ms=0):
        """Parse received bytes; returns the number of valid report frames."""
        good = 0
        b = self._buf
        for x in data:
            n = self._n
            if n < 4:
                if x == _HEAD[n]:
                    b[n] = x
                    self._n = n + 1
                else:
                    self._n = 1 if x == _HEAD[0] else 0
                continue
            b[n] = x
            n += 1
            self._n = n
            if n == 6:
                self._len = b[4] | (b[5] << 8)
                if self._len < 13 or self._len > _MAX_LEN:
                    self.errors += 1
                    good += self._resync(now_ms)
            elif n == 10 + self._len:
                if self._frame(b, self._len, now_ms):
                    self._n = 0
                    good += 1
                else:
                    self.errors += 1
                    self.fault = "bad frame"
                    good += self._resync(now_ms)
        return good

    def _resync(self, now_ms):
        # a truncated frame runs into the next header: parse again from there (error path only)
        b = self._buf
        n = self._n
        self._n = 0
        for j in range(1, n - 3):
            if b[j] == 0xF4 and b[j + 1] == 0xF3 and b[j + 2] == 0xF2 and b[j + 3] == 0xF1:
                return self.feed(bytes(b[j:n]), now_ms)
        if n >= 3 and b[n - 3] == 0xF4 and b[n - 2] == 0xF3 and b[n - 1] == 0xF2:
            return self.feed(bytes(b[n - 3 : n]), now_ms)
        return self.feed(bytes(b[n - 2 : n]), now_ms) if n >= 2 else 0

    def _frame(self, b, length, now_ms):
        end = 6 + length
        for i in range(4):
            if b[end + i] != _TAIL[i]:
                return False
        if b[6] not in (1, 2) or b[7] != 0xAA or b[end - 2] != 0x55:
            return False
        state = b[8]
        if state > 3:
            return False
        if state and not self.state:
            self._onsets += 1
        self.state = state
        self.move_cm = b[9] | (b[10] << 8)
        self.move_energy = b[11]
        self.still_cm = b[12] | (b[13] << 8)
        self.still_energy = b[14]
        self.detect_cm = b[15] | (b[16] << 8)
        self.frames += 1
        self._last_ms = now_ms
        self.fault = None
        return True

    def poll(self, now_ms=0):
        while True:
            n = self.uart.readinto(self._rx)
            if not n:
                break
            self.feed(memoryview(self._rx)[:n], now_ms)
        ref = self._last_ms if self._last_ms is not None else self._since_ms
        if ref is not None and ticks_diff(now_ms, ref) > self.timeout_ms:
            self.fault = "no valid frame for %d ms" % ticks_diff(now_ms, ref)
            self.state = None
        return self.state

    @property
    def present(self):
        return bool(self.state)

    def take(self):
        """Presence onsets (none -> moving/still) since the previous call."""
        n = self._onsets - self._taken
        self._taken = self._onsets
        return n
