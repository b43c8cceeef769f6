"""Lamp output: PWM dimming (directly, or as 0-10 V through the driver interface), an optional
relay, energy from level and rated power, and lamp-failure detection from a current sense.

Energy is integrated from the commanded level over monotonic time (flag "estimated": not
metered). Where the board senses the supply current, a lit lamp drawing (almost) nothing is a
lamp failure and a dark lamp drawing current is a stuck relay.

Usage::

    from spnode.drivers.lamp import Lamp

    lamp = Lamp(board.pwm("lamp"), rated_w=60, relay=board.pin("relay"),
                current_adc=board.adc("lamp_current"), amps_per_volt=0.5)
    lamp.set_level(0.7, now_ms)
    lamp.energy_wh(now_ms), lamp.power_w()
    lamp.check(now_ms)            # None, or "lamp_failure" / "relay_stuck"
"""

from spnode.compat import ticks_diff

FAIL_FRACTION = 0.3  # below this share of the expected current a lit lamp counts as failed
SETTLE_MS = 3000  # drivers ramp and soft-start: judge the current only after this


class Lamp:
    def __init__(
        self,
        pwm,
        rated_w,
        control="pwm",
        min_level=0.0,
        invert=False,
        relay=None,
        current_adc=None,
        amps_per_volt=1.0,
        mains_v=230.0,
    ):
        self.pwm = pwm
        self.rated_w = rated_w
        self.control = control
        self.min_level = min_level
        self.invert = invert
        self.relay = relay
        self.current_adc = current_adc
        self.amps_per_volt = amps_per_volt
        self.mains_v = mains_v
        self.level = 0.0
        self.fault = None
        self._wh = 0.0
        self._t = None
        self._changed = None

    def _accumulate(self, now_ms):
        if self._t is not None:
            dt = ticks_diff(now_ms, self._t)
            if dt > 0:
                self._wh += self.power_w() * dt / 3600000
        self._t = now_ms

    def duty_u16(self, level):
        # 0-10 V drivers hold their minimum below min_level; keep the command honest
        d = 0 if level <= 0 else int(max(level, self.min_level) * 65535 + 0.5)
        return 65535 - d if self.invert else d

    def set_level(self, level, now_ms):
        level = 0.0 if level < 0 else 1.0 if level > 1 else float(level)
        if level == self.level and self._t is not None:
            return  # called every control step: energy is counted at the next change or read
        self._accumulate(now_ms)
        if level != self.level:
            self._changed = now_ms
        self.level = level
        self.pwm.duty_u16(self.duty_u16(level))
        if self.relay is not None:
            self.relay.value(1 if level > 0 else 0)

    def power_w(self):
        """Estimated active power from the commanded level."""
        if self.level <= 0:
            return 0.0
        return max(self.level, self.min_level) * self.rated_w

    def energy_wh(self, now_ms):
        self._accumulate(now_ms)
        return self._wh

    def current_a(self):
        """Measured supply current, or None where the board has no current sense."""
        if self.current_adc is None:
            return None
        return self.current_adc.read_uv() / 1000000 * self.amps_per_volt

    def check(self, now_ms):
        """Lamp failure check; returns and keeps the fault (None when fine or not sensed)."""
        amps = self.current_a()
        if amps is None:
            return None
        if self._changed is not None and ticks_diff(now_ms, self._changed) < SETTLE_MS:
            return self.fault
        expected = self.power_w() / self.mains_v
        if self.level > 0 and amps < expected * FAIL_FRACTION:
            self.fault = "lamp_failure"
        elif self.level == 0 and amps > 0.05 * self.rated_w / self.mains_v:
            self.fault = "relay_stuck"
        else:
            self.fault = None
        return self.fault
