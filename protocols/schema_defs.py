"""The JSON Schemas of every payload, as Python data: the one source of truth.

The codec validates with these dicts on CPython (each built on demand); the node never holds
them: it runs them compiled into code (protocols/nodecheck, made by protocols/checkgen.py).
`python -m protocols.export_schemas` writes both, and protocols/schemas/*.json (committed, and
checked to be in step by a test) for anyone who wants to validate with a standard JSON Schema
tool.
"""

from protocols import MAX_PAYLOAD  # noqa: F401  (defined there, long named here)

DIALECT = "https://json-schema.org/draft/2020-12/schema"
BASE_ID = "https://streetpole.org/schemas/v1/"

MAX_READINGS = 64  # readings in one batch: a node sends one reporting period per batch
MAX_STORED = 32  # ranges in one confirmation: the controller sends more messages if need be
TS_MIN = 1577836800  # 2020-01-01T00:00:00Z: anything earlier means the clock is not set
TS_MAX = 4102444800  # 2100-01-01T00:00:00Z
U32 = 4294967295

ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_-]*$"
HHMM = "([01][0-9]|2[0-3]):[0-5][0-9]"

ALARM_CODES = (
    # TALQ lamp monitor failure flags
    "lampFailure",
    "dimmingFailure",
    "relayFailure",
    "supplyLoss",
    "lampUnexpectedOn",
    "controlGearCommFailure",
    "cyclingFailure",
    # node health
    "sensorFault",
    "bufferOverflow",
    "lowHeap",
    "clockInvalid",
    "safeMode",
    "configRejected",
    "updateFailed",
    # measured thresholds
    "noiseHigh",
    "pm25High",
)
RESET_CAUSES = ("power_on", "hard", "watchdog", "deepsleep", "soft", "brownout", "panic", "unknown")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
COMMANDS = ("override", "revert", "reboot", "selftest", "update")


def _int(lo, hi):
    return {"type": "integer", "minimum": lo, "maximum": hi}


def _num(lo, hi):
    return {"type": "number", "minimum": lo, "maximum": hi}


def _str(lo, hi, pattern=None):
    s = {"type": "string", "minLength": lo, "maxLength": hi}
    if pattern is not None:
        s["pattern"] = pattern
    return s


def _obj(props, required=(), **more):
    s = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        s["required"] = list(required)
    s.update(more)
    return s


def _when(field, value, then):
    """JSON Schema if/then on a discriminator field."""
    cond = {"enum": list(value)} if isinstance(value, tuple) else {"const": value}
    return {"if": {"properties": {field: cond}}, "then": then}


def _schema(name, title, body, defs=None):
    s = {"$schema": DIALECT, "$id": BASE_ID + name + ".json", "title": title}
    s.update(body)
    if defs:
        s["$defs"] = defs
    return s


ID = _str(1, 32, ID_PATTERN)
TS = _int(TS_MIN, TS_MAX)
LEVEL = _num(0, 1)
COUNTER = _int(0, U32)
TEXT = _str(0, 200)


def meas():
    from protocols.quantities import FLAGS, QUANTITIES  # here: the node checks no meas

    reading = _obj(
        {
            "ts": TS,
            "q": {"enum": sorted(QUANTITIES)},
            "v": {"type": "number"},
            "dur": _int(1, 86400),
            "src": ID,
            "flags": {
                "type": "array",
                "maxItems": 8,
                "uniqueItems": True,
                "items": {"enum": FLAGS},
            },
        },
        ("ts", "q", "v"),
    )
    return _schema(
        "meas",
        "Measurement batch (node -> controller)",
        _obj(
            {
                "boot": COUNTER,
                "seq": COUNTER,
                "readings": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_READINGS,
                    "items": {"$ref": "#/$defs/reading"},
                },
            },
            ("boot", "seq", "readings"),
        ),
        {"reading": reading},
    )


def event():
    return _schema(
        "event",
        "Event: presence or alarm (node -> controller)",
        _obj(
            {
                "boot": COUNTER,
                "seq": COUNTER,
                "ts": TS,
                "kind": {"enum": ["presence", "alarm"]},
                "src": ID,
                "count": _int(1, 1000),
                "distance_m": _num(0, 100),
                "moving": {"type": "boolean"},
                "code": {"enum": list(ALARM_CODES)},
                "active": {"type": "boolean"},
                "detail": TEXT,
            },
            ("boot", "seq", "ts", "kind"),
            allOf=[
                _when("kind", "presence", {"required": ["src"]}),
                _when("kind", "alarm", {"required": ["code", "active"]}),
            ],
        ),
    )


def state():
    online = ["ts", "fw", "boot", "uptime_s", "heap_free", "reset_cause", "level"]
    return _schema(
        "state",
        "Node state: birth message and retained last will (node -> controller, retained)",
        _obj(
            {
                "status": {"enum": ["online", "offline"]},
                "ts": TS,
                "fw": _str(1, 32),
                "boot": COUNTER,
                "uptime_s": COUNTER,
                "heap_free": COUNTER,
                "reset_cause": {"enum": list(RESET_CAUSES)},
                "level": LEVEL,
                "rssi": _int(-127, 0),
                "config_version": COUNTER,
                "buffered": COUNTER,
                "dropped": COUNTER,
                "safe_mode": {"type": "boolean"},
            },
            ("status",),
            allOf=[_when("status", "online", {"required": online})],
        ),
    )


def config():
    month_day = _str(5, 5, "^[01][0-9]-[0-3][0-9]$")
    step = _obj(
        {
            "at": _str(4, 7, "^(sunrise|sunset|" + HHMM + ")$"),
            "offset_min": _int(-180, 180),
            "level": LEVEL,
        },
        ("at", "level"),
    )
    program = _obj(
        {
            "steps": {
                "type": "array",
                "minItems": 1,
                "maxItems": 12,
                "items": {"$ref": "#/$defs/step"},
            }
        },
        ("steps",),
    )
    calendar_rule = _obj(
        {
            "program": ID,
            "days": {
                "type": "array",
                "minItems": 1,
                "maxItems": 7,
                "uniqueItems": True,
                "items": {"enum": list(DAYS)},
            },
            "dates": {
                "type": "array",
                "minItems": 1,
                "maxItems": 32,
                "items": _str(10, 10, "^20[0-9][0-9]-[01][0-9]-[0-3][0-9]$"),
            },
            "from": month_day,
            "to": month_day,
        },
        ("program",),
    )
    dimming = _obj(
        {
            "programs": {
                "type": "object",
                "minProperties": 1,
                "maxProperties": 8,
                "propertyNames": ID,
                "additionalProperties": {"$ref": "#/$defs/program"},
            },
            "default_program": ID,
            "calendar": {
                "type": "array",
                "maxItems": 16,
                "items": {"$ref": "#/$defs/calendar_rule"},
            },
            "min_level": LEVEL,
            "max_level": LEVEL,
            "safe_level": LEVEL,
            "presence": _obj(
                {
                    "level": LEVEL,
                    "ramp_up_s": _num(0, 60),
                    "hold_s": _num(0, 3600),
                    "ramp_down_s": _num(0, 600),
                    "neighbour_level": LEVEL,
                },
                ("level", "hold_s"),
            ),
            "noise_trigger": _obj(
                {"threshold_dba": _num(30, 130), "level": LEVEL, "hold_s": _num(0, 3600)},
                ("threshold_dba", "level"),
            ),
        },
        ("programs", "default_program"),
    )
    return _schema(
        "config",
        "Node configuration (controller -> node, retained)",
        _obj(
            {
                "version": _int(1, U32),
                "report_period_s": _int(10, 3600),
                "location": _obj({"lat": _num(-90, 90), "lon": _num(-180, 180)}, ("lat", "lon")),
                "tz": _str(3, 64),
                "dimming": {"$ref": "#/$defs/dimming"},
                "neighbours": {
                    "type": "array",
                    "maxItems": 16,
                    "items": _obj({"pole": ID, "node": ID}, ("pole", "node")),
                },
                "thresholds": _obj(
                    {
                        "noise_dba": _num(30, 130),
                        "pm25": _num(0, 2000),
                        "heap_low": _int(0, 1048576),
                        "pm_humidity": _num(50, 100),
                    }
                ),
                "calibration": _obj(
                    {
                        "noise_offset_db": _num(-30, 30),
                        "temperature_offset": _num(-10, 10),
                        "no2_we_zero_mv": _num(-1000, 1000),
                        "no2_ae_zero_mv": _num(-1000, 1000),
                        "no2_sensitivity_mv_ppb": _num(0.01, 10),
                    }
                ),
            },
            ("version", "report_period_s", "dimming"),
        ),
        {"dimming": dimming, "program": program, "step": step, "calendar_rule": calendar_rule},
    )


def cmd():
    return _schema(
        "cmd",
        "Command (controller -> node)",
        _obj(
            {
                "id": ID,
                "ts": TS,
                "cmd": {"enum": list(COMMANDS)},
                "level": LEVEL,
                "start": TS,
                "expiry": TS,
                "url": _str(8, 256, "^https?://"),
                "version": _str(1, 32),
                "size": _int(1, 16777216),
                "sha256": _str(64, 64, "^[0-9a-f]*$"),
                "sig": _str(64, 64, "^[0-9a-f]*$"),
                "rollback": {"type": "boolean"},
            },
            ("id", "ts", "cmd"),
            allOf=[
                _when("cmd", "override", {"required": ["level"]}),
                _when(
                    "cmd",
                    "update",
                    {"required": ["url", "version", "size", "sha256", "expiry", "sig"]},
                ),
            ],
        ),
    )


def ack():
    check = _obj({"name": ID, "ok": {"type": "boolean"}, "reason": TEXT}, ("name", "ok"))
    return _schema(
        "ack",
        "Acknowledgement of a command or a configuration (node -> controller)",
        _obj(
            {
                "id": ID,
                "kind": {"enum": ["cmd", "config"]},
                "ts": TS,
                "status": {"enum": ["accepted", "applied", "rejected", "failed"]},
                "reason": TEXT,
                "checks": {"type": "array", "maxItems": 32, "items": check},
            },
            ("id", "kind", "ts", "status"),
            allOf=[_when("status", ("rejected", "failed"), {"required": ["reason"]})],
        ),
    )


def presence():
    return _schema(
        "presence",
        "Neighbour presence: light ahead of a pedestrian or cyclist (node -> neighbour nodes)",
        _obj({"ts": TS, "src": ID}, ("ts",)),
    )


def stored():
    seqs = {"type": "array", "minItems": 3, "maxItems": 3, "items": COUNTER}
    return _schema(
        "stored",
        "Batches the controller has stored: [boot, first seq, last seq] each (controller -> node)",
        _obj(
            {"batches": {"type": "array", "minItems": 1, "maxItems": MAX_STORED, "items": seqs}},
            ("batches",),
        ),
    )


# channel name -> function building its schema. The schemas are built on demand so a node does
# not keep all of them in its heap (see codec.schema).
BUILDERS = {
    "meas": meas,
    "event": event,
    "state": state,
    "config": config,
    "cmd": cmd,
    "ack": ack,
    "presence": presence,
    "stored": stored,
}
