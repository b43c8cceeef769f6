"""Building a Node (spnode.app): loaded for the constructor, then unloaded (spnode.unload), so
the code that checks the local config, opens the sensors and wires the parts is not kept in the
heap while the node runs."""

import asyncio
import sys

from protocols import topics
from spnode import unload
from spnode.buffer import SIZE_FLASH, SIZE_RAM, Buffer
from spnode.dimming import Dimmer, Inputs
from spnode.flash import write_atomic
from spnode.health import Health
from spnode.mqtt_client import MQTTClient

_LOCAL = (
    "pole", "node", "wifi_ssid", "wifi_password", "broker", "tls", "host", "port", "username",
    "password", "location", "board", "sensors", "calibration", "update_key", "tls_context",
)  # fmt: skip


def _load_int(path, default):
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return default


def init(
    self, board, local, clock, host, port, username, password, ssl, keepalive, data_dir,
    updater, boot_mode, ntp_host, fw_version, boot,
):  # fmt: skip
    from spnode import app

    self.board = board
    self.bdef = getattr(board, "bdef", {}) or {}
    if not hasattr(local, "update_key"):  # check it; keep the values, not the checking code
        loaded = "spnode.nodeconfig" in sys.modules
        from spnode.nodeconfig import NodeConfig

        local = NodeConfig(local)
        NodeConfig = None
        if not loaded:
            unload("spnode.nodeconfig")
    lc = self.local = app._Local()
    for k in _LOCAL:
        setattr(lc, k, getattr(local, k))
    if clock is None:
        from spnode.clock import Clock

        clock = Clock()
    self.clock = clock
    self.data_dir = data_dir
    self.updater = updater
    self.safe_mode = boot_mode == "safe"
    self.boot_mode = boot_mode
    self.ntp_host = ntp_host
    self.fw = fw_version
    if boot is None:
        boot = 1
        if data_dir is not None:
            boot = _load_int(data_dir + "/boot", 0) + 1
            write_atomic(data_dir + "/boot", str(boot).encode())
    self.boot = boot
    self.seq = 0  # measurement batches this boot
    self.event_seq = 0
    t = topics.Topic(lc.pole, lc.node, topics.STATE)
    self.t_state = str(t)
    self.t_meas = str(t.sibling(topics.MEAS))
    self.t_event = str(t.sibling(topics.EVENT))
    self.t_ack = str(t.sibling(topics.ACK))
    self.t_presence = str(t.sibling(topics.PRESENCE))
    self.t_config = str(t.sibling(topics.CONFIG))
    self.t_cmd = str(t.sibling(topics.CMD))
    self.neighbours = ()  # presence topics of the configured neighbours
    # parts
    if data_dir is not None:
        self.buffer = Buffer(SIZE_FLASH[0], SIZE_FLASH[1], data_dir + "/meas.q")
        self.buffer.restore()
        self.remote = app._Remote(data_dir + "/config.json")
    else:
        self.buffer = Buffer(SIZE_RAM[0], SIZE_RAM[1])
        self.remote = app._Remote(None)
    self.dimmer = Dimmer()
    self.inp = Inputs()
    wdt = board.wdt(30000) if hasattr(board, "wdt") else None
    self.health = Health(wdt, clock)
    will = app.dump(topics.STATE, {"status": "offline", "fw": self.fw, "boot": boot})
    if ssl is None and lc.tls:
        ssl = lc.tls_context  # trusts only node.json's CA (spnode.tlsctx)
    if ssl is True:  # asyncio's own context trusts anyone on MicroPython
        raise ValueError("ssl: give an SSL context that verifies the broker")
    self.client = MQTTClient(
        lc.pole + "-" + lc.node,
        host or lc.host,
        port or lc.port,
        username=username if username is not None else lc.username,
        password=password if password is not None else lc.password,
        keepalive=keepalive,
        ssl=ssl,
        server_hostname=local.server_name,
        will=(self.t_state, will, 1, True),
        on_message=self._on_message,
        on_connect=self._on_connect,
    )
    self.client.subscribe(self.t_config, 1)
    self.client.subscribe(self.t_cmd, 1)
    self.client.subscribe(str(t.sibling(topics.STORED)), 0)
    # state of the run
    self.period_s = 60
    self.level = 1.0
    self.outbox = []  # (topic, payload, qos, retain), oldest first
    self.inbox = []  # (topic, payload)
    self.lost = 0  # outgoing acks/events or incoming messages dropped (full, or unencodable)
    self.acks = 0
    self._wake = asyncio.Event()
    self._work = asyncio.Event()
    self._stop = asyncio.Event()
    self.exit_reason = None
    self._state_due = True
    self._state_at = None
    self._state_level = None
    self._confirmed = False
    self._up_ms = 0  # summed by control_step: one ticks difference spans at most 6.2 days
    self._presence_at = None
    self._detections = 0
    self._lvl_sum = 0.0
    self._lvl_ms = 0
    self._last_ms = clock.ticks_ms()
    self._energy0 = 0.0
    self._dropped_seen = 0
    self._alarms = {}
    self._tasks = []
    _sensors(self)


def _sensors(self):
    b = self.board
    bd = self.bdef
    self.lamp = None
    self.pir = self.radar = self.pm = self.bme = self.no2 = self.noise = None
    self.srcs = {}
    lamp = bd.get("lamp")
    if lamp:
        from spnode.drivers.lamp import Lamp

        self.lamp = Lamp(
            b.pwm(lamp["pwm"]),
            lamp["rated_w"],
            lamp.get("control", "pwm"),
            lamp.get("min_level", 0.0),
            lamp.get("invert", False),
            b.pin(lamp["relay"]) if lamp.get("relay") else None,
            b.adc(lamp["current_adc"]) if lamp.get("current_adc") else None,
            lamp.get("amps_per_volt", 1.0),
            lamp.get("mains_v", 230.0),
        )
    if self.safe_mode:
        return  # safe mode: light, MQTT and updates only
    sensors = bd.get("sensors", {})
    cal = self.local.calibration
    for name in self.local.sensors:
        s = sensors.get(name)
        if s is None:
            continue
        kind = s["type"]
        if kind == "pir":
            from spnode.drivers.pir import Pir

            self.pir = Pir(b.pin(s["pin"]), self.clock.ticks_ms, s.get("debounce_ms", 200))
            self.pir.start()
            self.srcs["motion"] = name
        elif kind == "ld2410":
            from spnode.drivers.ld2410 import Ld2410

            self.radar = Ld2410(b.uart(s["uart"]))
            self.radar.start(self.clock.ticks_ms())
            self.srcs["motion"] = name
        elif kind in ("sps30", "pms5003"):
            from spnode.sensing.pm import PmSampler

            if kind == "sps30":
                from spnode.drivers.sps30 import Sps30

                dev = Sps30(b.i2c(s["i2c"]), s.get("addr", 0x69))
            else:
                from spnode.drivers.pms5003 import Pms5003

                dev = Pms5003(b.uart(s["uart"]))
            self.pm = PmSampler(dev, name)
        elif kind == "bme280":
            from spnode.drivers.bme280 import Bme280

            self.bme = Bme280(b.i2c(s["i2c"]), s.get("addr", 0x76))
            self.bme.begin()
            self.srcs["climate"] = name
        elif kind == "no2_cell":
            from spnode.drivers.no2_cell import No2Cell

            self.no2 = No2Cell(b.adc(s["we"]), b.adc(s["ae"]), s.get("n", 1.0), s.get("gain", 1.0))
            self.no2.calibrate(
                cal.get("no2_we_zero_mv"),
                cal.get("no2_ae_zero_mv"),
                cal.get("no2_sensitivity_mv_ppb"),
            )
            self.srcs["no2"] = name
        elif kind in ("inmp441", "ics43434"):
            from spnode.noise.meter import NoiseMeter

            rate = bd["i2s"][s["i2s"]]["rate"]
            self.noise = NoiseMeter(
                rate,
                s.get("sensitivity_dbfs", -26.0),
                cal.get("noise_offset_db", 0.0),
                s.get("floor_dba"),
            )
            self.mic = b.i2s(s["i2s"])
            self.srcs["noise"] = name
