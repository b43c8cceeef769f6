"""Particulate matter sampling around an SPS30 or PMS5003 driver.

Each reporting period: start the fan, ignore values during the warm-up (airflow and laser settle;
15-30 s), collect values over the read window, report the trimmed mean of pm1/pm25/pm10. Readings
at high relative humidity are flagged `humidity_high` (hygroscopic growth makes optical PM sensors
read high); values identical over a whole window mean a stuck sensor, reported as a fault. The
SPS30's fan is cleaned once a week (values during the 10 s cleaning are dropped).

Usage::

    from spnode.sensing.pm import PmSampler

    s = PmSampler(Sps30(i2c), "pm")         # or Pms5003(uart)
    s.begin(now_s, ms)                       # fan on (ms: ticks_ms, for the sensor's silence)
    s.step(now_s, ms)                        # call about once a second
    readings = s.report(ts, dur, rh=62.0)    # [] (and s.fault) when nothing was measured
"""

from array import array

from spnode.sensing import reading, trimmed_mean

WARMUP_S = 30
CLEAN_EVERY_S = 7 * 86400
CLEAN_S = 10
MAX_SAMPLES = 64  # a ring: the newest 64 values of the window
STUCK_MIN = 10


class PmSampler:
    def __init__(
        self, sensor, src, warmup_s=WARMUP_S, trim=0.1, humidity_limit=75.0, clean_every_s=None
    ):
        self.sensor = sensor
        self.src = src
        self.warmup_s = warmup_s
        self.trim = trim
        self.humidity_limit = humidity_limit
        self.can_clean = hasattr(sensor, "clean") and hasattr(sensor, "data_ready")
        self.clean_every_s = CLEAN_EVERY_S if clean_every_s is None else clean_every_s
        self.fault = None
        self.running = False
        self.last_clean = None
        self._t0 = None
        self._clean_until = None
        self._pm = (
            array("f", bytes(4 * MAX_SAMPLES)),
            array("f", bytes(4 * MAX_SAMPLES)),
            array("f", bytes(4 * MAX_SAMPLES)),
        )
        self._n = 0

    def begin(self, now_s, ms=None):
        """Start the fan (wake-up and start measurement); warm-up counts from here. ``ms``:
        ticks, which the PMS5003 driver times its silence check with (default ``now_s`` in ms,
        for tests)."""
        if self.running:
            return
        s = self.sensor
        if hasattr(s, "data_ready"):
            s.wake()
            ok = s.start()
        else:
            s.start(now_ms=now_s * 1000 if ms is None else ms)
            ok = True
        self.running = True
        self._t0 = now_s
        if self.last_clean is None:
            self.last_clean = now_s
        if not ok:
            self.fault = s.fault

    def end(self):
        """Stop the fan between windows (laser and fan life)."""
        if self.running:
            self.sensor.stop()
            self.running = False

    def warming_up(self, now_s):
        return self._t0 is None or now_s - self._t0 < self.warmup_s

    def step(self, now_s, ms=None):
        """Take one value if the sensor has one and warm-up and cleaning are over."""
        if not self.running:
            self.begin(now_s, ms)
        if self._clean_until is not None:
            if now_s < self._clean_until:
                return
            self._clean_until = None
        due = self.can_clean and now_s - self.last_clean >= self.clean_every_s
        if due and self.sensor.clean():
            self.last_clean = now_s
            self._clean_until = now_s + CLEAN_S
            return
        s = self.sensor
        if hasattr(s, "data_ready"):
            v = s.read_pm() if s.data_ready() else None
        else:
            v = s.read_pm(now_s * 1000 if ms is None else ms)
        if v is None:
            if s.fault:
                self.fault = s.fault
            return
        if self.warming_up(now_s):
            return
        self.fault = None
        k = self._n % MAX_SAMPLES
        for i in range(3):
            self._pm[i][k] = v[i]
        self._n += 1

    def report(self, ts, dur, rh=None):
        """Trimmed means of the window as readings; clears the window."""
        n = min(self._n, MAX_SAMPLES)
        self._n = 0
        pm = [a[:n] for a in self._pm]
        if n == 0:
            if self.fault is None and self.running:
                self.fault = "no values yet (warming up)" if self._t0 is not None else "not started"
            return []
        if n >= STUCK_MIN and pm[1][0] > 0:
            same = True
            for lst in pm:
                if min(lst) != max(lst):
                    same = False
            if same:
                self.fault = "stuck: %d identical values" % n
                return []
        flags = []
        if rh is not None and rh > self.humidity_limit:
            flags.append("humidity_high")
        out = []
        for i, q in ((0, "pm1"), (1, "pm25"), (2, "pm10")):
            out.append(reading(ts, q, trimmed_mean(pm[i], self.trim), dur, self.src, flags))
        return out
