"""Simulated board: the same interface as `esp32.Esp32Board`, pure Python, with simulated devices
attached to its buses. Runs on MicroPython and CPython. Time is simulated: `sleep_ms` advances the
board's clock instead of waiting, so tests and the simulator drive time themselves.

Usage::

    from spnode.board.sim import SimBoard
    from spnode.sim.devices import Sps30Device

    board = SimBoard(bdef)                           # bdef from boarddef.load(...)
    board.i2c("main").attach(0x69, Sps30Device())    # a device that speaks the real frames
    board.adc("no2_we").set_mv(251.0)
    board.advance(1000)                              # one simulated second
"""

from spnode.compat import TICKS_MASK, ticks_diff


class SimPin:
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, value=0):
        self._v = value
        self._handler = None
        self._trigger = 0

    def value(self, v=None):
        if v is None:
            return self._v
        self.set(v)

    def __call__(self, v=None):
        return self.value(v)

    def irq(self, handler=None, trigger=3):
        self._handler = handler
        self._trigger = trigger

    def set(self, v):
        """Drive the pin (simulated world side); fires the IRQ on a matching edge."""
        v = 1 if v else 0
        old, self._v = self._v, v
        if self._handler is not None and old != v:
            edge = self.IRQ_RISING if v else self.IRQ_FALLING
            if self._trigger & edge:
                self._handler(self)


class SimPWM:
    def __init__(self, freq=1000):
        self._freq = freq
        self._duty = 0

    def freq(self, f=None):
        if f is None:
            return self._freq
        self._freq = f

    def duty_u16(self, d=None):
        if d is None:
            return self._duty
        self._duty = max(0, min(65535, int(d)))

    def deinit(self):
        self._duty = 0


class SimADC:
    """ADC input; `set_mv` sets the voltage, or `source` (a function returning mV) follows a model,
    e.g. the lamp current sense following the PWM duty. Clamped to the ESP32's 11 dB range."""

    FULL_MV = 3100

    def __init__(self):
        self.mv = 0.0
        self.source = None

    def set_mv(self, mv):
        self.mv = mv
        self.source = None

    def read_uv(self):
        mv = self.source() if self.source is not None else self.mv
        return int(max(0.0, min(self.FULL_MV, mv)) * 1000)

    def read_u16(self):
        return self.read_uv() * 65535 // (self.FULL_MV * 1000)


class SimWDT:
    def __init__(self, board, timeout_ms):
        self.board = board
        self.timeout_ms = timeout_ms
        self.last = board.ticks_ms()

    def feed(self):
        self.last = self.board.ticks_ms()

    def expired(self):
        return ticks_diff(self.board.ticks_ms(), self.last) > self.timeout_ms


class SimWLAN:
    def __init__(self):
        self.connected = True

    def active(self, on=None):
        return True

    def isconnected(self):
        return self.connected

    def connect(self, ssid=None, key=None):
        self.connected = True


class SimBoard:
    platform = "sim"

    def __init__(self, bdef, now_ms=0, ota_dir=None):
        self.bdef = bdef
        self.now_ms = now_ms
        self.ota_dir = ota_dir  # A/B slots in files (spnode.board.simota), or None
        self.cause = "power_on"
        self._open = {}
        self._wlan = None
        self._rtc = None

    def _get(self, kind, name, make):
        key = kind + ":" + name
        obj = self._open.get(key)
        if obj is None:
            section = self.bdef.get(kind, {})
            if name not in section:
                raise KeyError("board has no %s named %r" % (kind, name))
            obj = make(section[name])
            self._open[key] = obj
        return obj

    # the buses and the RTC are in spnode.board.simbus, loaded when a board first opens one

    def i2c(self, name):
        from spnode.board.simbus import SimI2C

        return self._get("i2c", name, lambda c: SimI2C())

    def uart(self, name):
        from spnode.board.simbus import SimUART

        return self._get("uart", name, lambda c: SimUART(c.get("baud", 9600)))

    def i2s(self, name):
        from spnode.board.simbus import SimI2S

        return self._get("i2s", name, lambda c: SimI2S(c["rate"]))

    def pin(self, name):
        return self._get("pins", name, lambda c: SimPin(c.get("init", 0)))

    def pwm(self, name):
        return self._get("pwm", name, lambda c: SimPWM(c.get("freq", 1000)))

    def adc(self, name):
        return self._get("adc", name, lambda c: SimADC())

    def wdt(self, timeout_ms):
        return SimWDT(self, timeout_ms)

    def rtc(self):
        if self._rtc is None:
            from spnode.board.simbus import SimRTC

            self._rtc = SimRTC()
        return self._rtc

    def wlan(self):
        if self._wlan is None:
            self._wlan = SimWLAN()
        return self._wlan

    def reset_cause(self):
        return self.cause

    def unique_id(self):
        return b"\x00sim\x00\x01"

    # A/B app slots: on the unix port the image is the interpreter's ELF binary (its magic, its
    # class and byte order, its machine); spnode.board.simota has the slots
    image_id = ((0, 6), (18, 20))

    def ota_running(self):
        if self.ota_dir is None:
            return None
        from spnode.board.simota import FilePartition, read_otadata

        return FilePartition(self.ota_dir, read_otadata(self.ota_dir)["running"])

    def ota_mark_valid(self):
        from spnode.board.simota import mark_app_valid

        mark_app_valid(self.ota_dir)

    def ticks_ms(self):
        return self.now_ms & TICKS_MASK

    def sleep_ms(self, ms):
        self.now_ms += ms

    def advance(self, ms):
        self.now_ms += ms
