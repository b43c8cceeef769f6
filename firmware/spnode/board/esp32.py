"""ESP32 board: a thin wrapper over `machine` and `network`, configured by a board definition.

This is the only node module that imports `machine` or `network`. Nothing is touched at import
or in the constructor: each bus is created on first use and then kept.

Usage (on the node)::

    from spnode import boarddef
    from spnode.board.esp32 import Esp32Board

    board = Esp32Board(boarddef.load("board.json"))
    uart = board.uart("pm")              # machine.UART(2, 9600, rx=16, tx=17)
    mic = board.i2s("mic")               # machine.I2S RX, 32-bit mono frames
    n = mic.readinto(buf)                # INMP441/ICS-43434: 24-bit data, left-justified
"""

import time

import machine

_RESET = {
    "PWRON_RESET": "power_on",
    "HARD_RESET": "hard",
    "WDT_RESET": "watchdog",
    "DEEPSLEEP_RESET": "deepsleep",
    "SOFT_RESET": "soft",
}


class Esp32Board:
    platform = "esp32"

    def __init__(self, bdef):
        self.bdef = bdef
        self._open = {}

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

    def i2c(self, name):
        def make(c):
            return machine.I2C(
                c.get("id", 0),
                sda=machine.Pin(c["sda"]),
                scl=machine.Pin(c["scl"]),
                freq=c.get("freq", 100000),
            )

        return self._get("i2c", name, make)

    def uart(self, name):
        def make(c):
            return machine.UART(
                c["id"], c["baud"], rx=c["rx"], tx=c["tx"], timeout=0, rxbuf=c.get("rxbuf", 256)
            )

        return self._get("uart", name, make)

    def i2s(self, name):
        def make(c):
            return machine.I2S(
                c.get("id", 0),
                sck=machine.Pin(c["sck"]),
                ws=machine.Pin(c["ws"]),
                sd=machine.Pin(c["sd"]),
                mode=machine.I2S.RX,
                bits=32,
                format=machine.I2S.MONO,
                rate=c["rate"],
                ibuf=c.get("ibuf", 8192),
            )

        return self._get("i2s", name, make)

    def pin(self, name):
        def make(c):
            pull = {"up": machine.Pin.PULL_UP, "down": machine.Pin.PULL_DOWN}.get(c.get("pull"))
            if c.get("out"):
                return machine.Pin(c["pin"], machine.Pin.OUT, value=c.get("init", 0))
            return machine.Pin(c["pin"], machine.Pin.IN, pull)

        return self._get("pins", name, make)

    def pwm(self, name):
        def make(c):
            return machine.PWM(machine.Pin(c["pin"]), freq=c.get("freq", 1000), duty_u16=0)

        return self._get("pwm", name, make)

    def adc(self, name):
        def make(c):
            adc = machine.ADC(machine.Pin(c["pin"]))
            adc.atten(machine.ADC.ATTN_11DB)  # about 0.15-2.45 V usable; read_uv() is calibrated
            return adc

        return self._get("adc", name, make)

    def wdt(self, timeout_ms):
        return machine.WDT(timeout=timeout_ms)

    def rtc(self):
        return machine.RTC()

    def wlan(self):
        import network

        return network.WLAN(network.STA_IF)

    def reset_cause(self):
        cause = machine.reset_cause()
        for attr, name in _RESET.items():
            if getattr(machine, attr, None) == cause:
                return name
        return "unknown"

    def unique_id(self):
        return machine.unique_id()

    def reset(self):
        machine.reset()

    # ---- A/B app slots (spnode.imgupdate) ---------------------------------------------------
    # The image's own header fields that say which device it is for: the ESP image magic (0xE9),
    # the chip id of the extended header, and the app description's magic at 0x20 (an app, not
    # a whole-flash image starting with the bootloader); a new image must carry the running one's.
    image_id = ((0, 1), (12, 14), (32, 36))

    def ota_running(self):
        """The partition this image runs from, or None when the flash has no second app slot
        (a development node flashed with a single factory app: it takes .mpy trees)."""
        import esp32

        part = esp32.Partition(esp32.Partition.RUNNING)
        try:
            part.get_next_update()
        except OSError:
            return None
        return part

    def ota_mark_valid(self):
        """Keep the running image: with rollback enabled, the bootloader would otherwise go
        back to the other slot at the next reset."""
        import esp32

        esp32.Partition.mark_app_valid_cancel_rollback()

    def ticks_ms(self):
        return time.ticks_ms()

    def sleep_ms(self, ms):
        time.sleep_ms(ms)
