"""Time on the node: UTC wall time for timestamps, the monotonic clock for control.

Wall time can jump (first NTP sync after boot, a correction); ramps, holds and timeouts therefore
run on ``ticks_ms`` and only timestamps and schedules use ``now()``. Until NTP has answered, the
node has no valid time (``valid`` is False): the light fails towards full on and readings are not
stamped with an invented time.

The clock keeps an offset to the interpreter's clock instead of setting the RTC, so the same code
serves the ESP32 (whose ``time.time()`` counts from 2000 on older ports), CPython, and the
simulator, which substitutes a clock of its own with the same three methods (``now``, ``ticks_ms``,
``valid``) to run time faster than real. Example::

    clock = Clock()
    await clock.sync_ntp("pool.ntp.org")    # non-blocking SNTP over UDP
    ts = clock.now()                        # UTC epoch seconds (float)
"""

import asyncio
import socket
import struct
import time

from spnode.compat import TICKS_MASK, ticks_diff, ticks_ms

TS_VALID_AFTER = 1577836800  # 2020-01-01: before this the clock was never set
NTP_DELTA = 2208988800  # seconds from 1900-01-01 (NTP era 0) to 1970-01-01
_EPOCH_OFFSET = 946684800 if time.gmtime(0)[0] == 2000 else 0


class Clock:
    def __init__(self):
        self.offset = 0.0  # add to the interpreter's time to get UTC since 1970
        self.synced = False
        self.last_sync_ms = None
        self.sync_failures = 0

    def ticks_ms(self):
        return ticks_ms()

    def now(self):
        return time.time() + _EPOCH_OFFSET + self.offset

    @property
    def valid(self):
        return self.synced or self.now() >= TS_VALID_AFTER

    def set(self, utc_seconds):
        self.offset = utc_seconds - (time.time() + _EPOCH_OFFSET)
        self.synced = True
        self.last_sync_ms = ticks_ms()

    async def sync_ntp(self, host, port=123, timeout_ms=2000):
        """One SNTP query (RFC 4330) without blocking other tasks; True when the clock was set."""
        sock = None
        try:
            addr = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0][-1]
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
            query = bytearray(48)
            query[0] = 0x1B  # LI 0, version 3, mode 3 (client)
            sent_at = time.time()
            sock.sendto(query, addr)
            start = ticks_ms()
            while True:
                try:
                    data = sock.recv(48)
                    break
                except OSError:  # EAGAIN: nothing yet
                    if ticks_diff(ticks_ms(), start) > timeout_ms:
                        raise
                    await asyncio.sleep(0.05)
            ntp = parse_ntp_reply(data)
            # half the round trip is a fair estimate of the reply's age
            self.set(ntp + (time.time() - sent_at) / 2)
            return True
        except Exception:
            self.sync_failures += 1
            return False
        finally:
            if sock is not None:
                sock.close()


def parse_ntp_reply(data):
    """UTC seconds since 1970 from an SNTP reply's transmit timestamp; ValueError if unusable."""
    if len(data) < 48:
        raise ValueError("short NTP reply")
    mode = data[0] & 7
    stratum = data[1]
    if mode != 4 or stratum == 0 or stratum > 15:
        raise ValueError("not a usable server reply (mode %d, stratum %d)" % (mode, stratum))
    secs, frac = struct.unpack("!II", data[40:48])
    if secs == 0:
        raise ValueError("server has no time")
    return secs - NTP_DELTA + frac / 4294967296


class ScaledClock:
    """A clock running ``speed`` times faster than real time, from ``start`` (UTC seconds; now by
    default): the simulator and the tests run a node's reporting periods, ramps and holds in a
    fraction of the time. The node sleeps through ``sleep_ms``, so its tasks speed up together;
    network timeouts stay real. Always valid (the simulated street has a time server). Its ticks
    start at ``ticks0`` and wrap as the node's do (a test starts them just before the wrap)."""

    def __init__(self, speed=1.0, start=None, ticks0=0):
        self.speed = speed
        self.ticks0 = ticks0
        self._last = ticks_ms()
        self._real_ms = 0  # real milliseconds since start, accumulated (ticks wrap on the node)
        self._start = time.time() + _EPOCH_OFFSET if start is None else start
        self.synced = True
        self.valid = True

    def _elapsed_ms(self):
        t = ticks_ms()
        self._real_ms += ticks_diff(t, self._last)
        self._last = t
        return self._real_ms * self.speed

    def ticks_ms(self):
        # a ticks value made from the run's length, which may pass ticks_add's range
        return (self.ticks0 + int(self._elapsed_ms())) & TICKS_MASK

    def now(self):
        return self._start + self._elapsed_ms() / 1000

    def sleep_ms(self, ms):
        return asyncio.sleep(ms / self.speed / 1000)
