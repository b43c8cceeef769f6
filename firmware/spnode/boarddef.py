"""Board definitions: which pins, buses and sensors a node has, as data (hardware/boards/*.json).

`load` reads and validates a definition and returns it as a dict; every problem raises
BoardDefError naming the field, e.g. ``sensors.pm.i2c: names no bus in i2c``.

Usage::

    from spnode import boarddef

    bdef = boarddef.load("board.json")
    bdef["sensors"]["pm"]["type"]      # 'sps30'
"""

import json
import sys

from spnode import unload

PLATFORMS = ("esp32", "sim")
ESP32_GPIO = set(range(0, 40)) - {20, 24, 28, 29, 30, 31}
ESP32_INPUT_ONLY = (34, 35, 36, 37, 38, 39)
ESP32_ADC1 = (32, 33, 34, 35, 36, 37, 38, 39)  # ADC2 cannot be read while Wi-Fi is on
ESP32_FLASH = (6, 7, 8, 9, 10, 11)  # wired to the SPI flash on a DevKitC
SECTIONS = ("i2c", "uart", "i2s", "pins", "pwm", "adc")
PIN_FIELDS = {
    "i2c": ("sda", "scl"),
    "uart": ("rx", "tx"),
    "i2s": ("sck", "ws", "sd"),
    "pins": ("pin",),
    "pwm": ("pin",),
    "adc": ("pin",),
}
OUTPUT_FIELDS = ("sda", "scl", "tx", "sck", "ws")  # driven by the ESP32 (pwm/out pins too)


class BoardDefError(ValueError):
    def __init__(self, field, reason):
        ValueError.__init__(self, "%s: %s" % (field, reason))
        self.field = field
        self.reason = reason


def load(path):
    """Read a board definition file and return the validated dict."""
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError:
        raise BoardDefError("file", "cannot read %s" % path) from None
    except ValueError:
        raise BoardDefError("file", "%s is not valid JSON" % path) from None
    return validate(data)


def _need(obj, key, kind, where):
    if key not in obj:
        raise BoardDefError(where + key, "missing")
    v = obj[key]
    if kind is int and (not isinstance(v, int) or isinstance(v, bool)):
        raise BoardDefError(where + key, "must be an integer")
    if kind is float and (not isinstance(v, (int, float)) or isinstance(v, bool)):
        raise BoardDefError(where + key, "must be a number")
    if kind is str and not isinstance(v, str):
        raise BoardDefError(where + key, "must be a string")
    if kind is dict and not isinstance(v, dict):
        raise BoardDefError(where + key, "must be an object")
    return v


def validate(data):
    """Check a board definition (a dict); raise BoardDefError or return it."""
    if not isinstance(data, dict):
        raise BoardDefError("board", "must be a JSON object")
    _need(data, "name", str, "")
    platform = _need(data, "platform", str, "")
    if platform not in PLATFORMS:
        raise BoardDefError("platform", "must be one of " + ", ".join(PLATFORMS))
    used = {}
    for section in SECTIONS:
        entries = data.get(section, {})
        if not isinstance(entries, dict):
            raise BoardDefError(section, "must be an object of named entries")
        for name, entry in entries.items():
            where = "%s.%s." % (section, name)
            if not isinstance(entry, dict):
                raise BoardDefError(where[:-1], "must be an object")
            if section in ("uart", "i2s"):
                _need(entry, "baud" if section == "uart" else "rate", int, where)
            if section == "uart":
                _need(entry, "id", int, where)
            if platform != "esp32":
                continue
            for field in PIN_FIELDS[section]:
                pin = _need(entry, field, int, where)
                if pin not in ESP32_GPIO or pin in ESP32_FLASH:
                    raise BoardDefError(where + field, "GPIO%d is not usable on an ESP32" % pin)
                output = field in OUTPUT_FIELDS or section == "pwm" or entry.get("out")
                if output and pin in ESP32_INPUT_ONLY:
                    raise BoardDefError(where + field, "GPIO%d is input only" % pin)
                if section == "adc" and pin not in ESP32_ADC1:
                    raise BoardDefError(
                        where + field, "GPIO%d is not on ADC1 (32-39); ADC2 fails with Wi-Fi" % pin
                    )
                if pin in used and not (section == "i2c" and used[pin][0] == "i2c"):
                    raise BoardDefError(
                        where + field, "GPIO%d already used by %s" % (pin, used[pin])
                    )
                used[pin] = section + "." + name
    _check_sensors(data)
    lamp = data.get("lamp")
    if lamp is not None:
        if not isinstance(lamp, dict):
            raise BoardDefError("lamp", "must be an object")
        ref = _need(lamp, "pwm", str, "lamp.")
        if ref not in data.get("pwm", {}):
            raise BoardDefError("lamp.pwm", "names no entry %r in pwm" % ref)
        rated = _need(lamp, "rated_w", float, "lamp.")
        if not 0 < rated <= 5000:
            raise BoardDefError("lamp.rated_w", "must be in 0..5000 W")
        if lamp.get("control", "pwm") not in ("pwm", "0-10v"):
            raise BoardDefError("lamp.control", "must be pwm or 0-10v")
        cur = lamp.get("current_adc")
        if cur is not None:
            if cur not in data.get("adc", {}):
                raise BoardDefError("lamp.current_adc", "names no entry %r in adc" % cur)
            _need(lamp, "amps_per_volt", float, "lamp.")
        relay = lamp.get("relay")
        if relay is not None and relay not in data.get("pins", {}):
            raise BoardDefError("lamp.relay", "names no entry %r in pins" % relay)
    return data


def _check_sensors(data):
    """Each sensor's type known and its buses defined (spnode.sensortypes, loaded for the check
    and unloaded after it unless it was in use)."""
    loaded = "spnode.sensortypes" in sys.modules
    from spnode.sensortypes import BUS, FIELDS, TYPES

    try:
        sensors = data.get("sensors", {})
        if not isinstance(sensors, dict):
            raise BoardDefError("sensors", "must be an object")
        for name, s in sensors.items():
            where = "sensors.%s." % name
            if not isinstance(s, dict):
                raise BoardDefError(where[:-1], "must be an object")
            kind = _need(s, "type", str, where)
            row = TYPES.get(kind)
            if row is None:
                raise BoardDefError(
                    where + "type", "unknown sensor %r (known: %s)" % (kind, ", ".join(TYPES))
                )
            section = row[BUS]
            for field in row[FIELDS]:
                ref = _need(s, field, str, where)
                if ref not in data.get(section, {}):
                    raise BoardDefError(where + field, "names no entry %r in %s" % (ref, section))
            if section == "i2c" and "addr" in s:
                _need(s, "addr", int, where)
    finally:
        TYPES = None
        if not loaded:
            unload("spnode.sensortypes")
