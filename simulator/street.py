"""The virtual poles: the firmware's own ``spnode.app.Node`` on a simulated board per pole, all
in one asyncio loop, each with its own MQTT connection and credentials. One ticker owns time
(``StreetClock``): it advances the street in control steps of 100 simulated ms, and at each
step moves the world (PIR pulses where people walk, PM and climate into the byte-exact SPS30 and
BME280 models, the lamp's current sense, the scripted faults) and then runs every node's
``control_step`` -- the firmware's own control cycle, driven by one shared timer instead of one
asyncio sleep per node (the nodes' other tasks run as in the firmware, sleeping through the
clock's ``sleep_ms``). World and lights thus move in lockstep whatever the speed; when the
machine cannot keep up, simulated time runs slower and the lag shows in ``tick_lag_p99_ms``.
It also keeps the score for the report::

    street = Street(layout, world, "mqtt://127.0.0.1:1883", creds, speed=60, faults=faults)
    await street.run(sim_seconds=3600)        # or street.stop() from anywhere (thread-safe)
    street.totals()

A pole with a flash directory (``flash_dir``) keeps its buffer and config there and runs the
firmware's updater on it: an update command downloads, verifies and stages the SPA1 archive into
``<flash>/<pole>/app.new``; the node reboots (a new ``Node`` on the same board), the updater's
boot step swaps it in on probation, and the new version is what the node reports. CPython cannot
swap the running code: a boot "imports" the app by compiling its ``.py`` files, and one that does
not compile is a crash at boot, which the updater answers with a rollback after its trial boots.
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from simulator.layout import Layout, Pole
from simulator.mpnodes import MP_SENSORS, MicroPythonPole, build_node_rom
from simulator.provision import RATED_W, Credentials
from simulator.scenario import Fault
from simulator.world import Event, World
from spnode import VERSION, boarddef
from spnode import app as _app
from spnode import health as _health
from spnode.app import Node
from spnode.board.sim import SimBoard, SimPin, SimPWM
from spnode.board.simbus import SimI2C
from spnode.compat import TICKS_PERIOD, ticks_add
from spnode.drivers import sps30 as _sps30
from spnode.mqtt_client import NotConnected
from spnode.sim import devices as _devices
from spnode.sim.devices import Bme280Device, Sps30Device
from spnode.sim.lamp import LampModel
from spnode.update import Updater

BOARD = Path(__file__).resolve().parent.parent / "hardware" / "boards" / "sim.json"
SENSORS = ("pir", "pm", "climate")
STEP_MS = 100  # the firmware's control period (spnode.app.CONTROL_MS)
MIN_TICK_S = 0.02  # real seconds the ticker sleeps at least between rounds
MAX_WORK_S = 0.1  # real seconds of stepping before the ticker lets the network run
ENV_EVERY_S = 60.0  # simulated seconds between environment updates of a pole
ENV_STEPS = int(ENV_EVERY_S * 1000) // STEP_MS
# A street's first connections spread at this many poles a real second, over at most
# CONNECT_SPREAD_MAX_S (a street powered on at once: nodes join as their Wi-Fi comes up)
CONNECT_RATE = 500.0
CONNECT_SPREAD_MAX_S = 40.0

SAMPLE_S = 60.0  # simulated seconds per point of the report's chart
CRASH_MS = 3000  # simulated time a crashing boot takes before the next one
SERVED = ("pedestrian", "cyclist")  # whose passes count for the service level
FREEZE_AT_S = (5, 30)  # real seconds into the run at which long-lived objects are frozen again


def connect_spread_s(poles: int) -> float:
    """Real seconds over which a street of ``poles`` makes its first connections (each MQTT
    connect with its birth message costs the process about 2 ms: 5,000 at once were 10 s of
    work with the control ticks waiting behind it)."""
    return min(CONNECT_SPREAD_MAX_S, poles / CONNECT_RATE)


class _Gc:
    """``gc`` as the firmware sees it in the simulator. On the ESP32 a full collection after
    each report keeps MicroPython's small heap unfragmented; in one CPython process holding
    thousands of nodes each call walks every node's objects (8 ms at 50 poles, most of the
    run's time), and CPython collects on its own, so here it does nothing."""

    @staticmethod
    def collect() -> None:
        return None


_app.gc = _Gc
_health.gc = _Gc


def _crc_table() -> list[int]:
    table = []
    for x in range(256):
        crc = x
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table.append(crc)
    return table


_CRC = _crc_table()


def _crc8(data: Any, start: int = 0, end: int | None = None) -> int:
    """The SPS30 driver's Sensirion CRC-8, table-driven (same results, ~10x faster): every
    pole reads its SPS30 every second, and checking 20 words bit by bit was the run's top cost."""
    t = _CRC
    if end is None:
        end = len(data)
    if end - start == 2:
        return int(t[t[0xFF ^ data[start]] ^ data[start + 1]])
    crc = 0xFF
    for i in range(start, end):
        crc = t[crc ^ data[i]]
    return crc


_sps30.crc8 = _crc8
_devices.crc8 = _crc8


class FastSps30(Sps30Device):  # type: ignore[misc]
    """The simulated SPS30 with its CRC'd frames cached by payload (a pole's payloads repeat:
    five variations around values that change once a simulated minute)."""

    _frames: ClassVar[dict[bytes, bytes]] = {}

    def read(self, n: int) -> bytes:
        if self.fault is not None:
            return bytes(super().read(n))
        payload = self._payload()
        out = self._frames.get(payload)
        if out is None:
            if len(self._frames) > 50000:
                self._frames.clear()
            out = self._frames[payload] = bytes(_devices._words_with_crc(payload))
        return out[:n]


class FastI2C(SimI2C):  # type: ignore[misc]
    """The simulated I2C bus with the read copied in one slice (same bytes, 0xFF past what the
    device clocks out): the byte loop was a fifth of each pole's sensing."""

    def readfrom_into(self, addr: int, buf: Any, stop: bool = True) -> None:
        data = self._dev(addr).read(len(buf))
        m, n = len(buf), len(data)
        if n >= m:
            buf[:] = data[:m]
        else:
            buf[:n] = data
            buf[n:] = b"\xff" * (m - n)


class FastPWM(SimPWM):  # type: ignore[misc]
    """The lamp's simulated PWM output: the driver's duty (an int in range) is stored without
    the clamping round trip; anything else goes the board's way. With ``FastPin`` for the
    relay, a third off the lamp driver's ``set_level``, which every control step calls."""

    def duty_u16(self, d: Any = None) -> Any:
        if d is None:
            return int(self._duty)  # type: ignore[has-type]
        if d.__class__ is int and 0 <= d <= 65535:
            self._duty = d
        else:
            super().duty_u16(d)
        return None


class FastPin(SimPin):  # type: ignore[misc]
    """A simulated pin (the lamp's relay, the PIR): a write to a pin without an IRQ handler
    stores the level in place (the board's ``set`` only adds the edge callback)."""

    def value(self, v: Any = None) -> Any:
        if v is None:
            return int(self._v)  # type: ignore[has-type]
        if self._handler is None:
            self._v = 1 if v else 0
        else:
            self.set(v)
        return None


class FastBoard(SimBoard):  # type: ignore[misc]
    """The simulated board with the faster parts above (made as such: an object whose class
    is swapped afterwards loses CPython's attribute fast paths, and was slower than before)."""

    def pin(self, name: str) -> Any:
        return self._get("pins", name, lambda c: FastPin(c.get("init", 0)))

    def pwm(self, name: str) -> Any:
        return self._get("pwm", name, lambda c: FastPWM(c.get("freq", 1000)))

    def i2c(self, name: str) -> Any:
        return self._get("i2c", name, lambda c: FastI2C())


# The nodes' ticks start ten simulated minutes before they wrap (as an ESP32's do after 12.4
# days), so every run crosses the wrap and a raw subtraction of ticks shows at once.
TICKS_START = TICKS_PERIOD - 10 * 60_000


class StreetClock:
    """Simulated time, shared by the street: the ticker sets ``t``; nodes read it through their
    own ``NodeClock`` (which may be skewed). Sleeps are real time divided by the speed."""

    def __init__(self, speed: float, start: float) -> None:
        self.speed = speed
        self.t0 = start
        self.ms = 0  # simulated ms since the start (integer: no float drift over a night)
        self.t = start
        self.valid = True
        self.synced = True

    def ticks_ms(self) -> int:
        ticks: int = (TICKS_START + self.ms) % TICKS_PERIOD
        return ticks

    def now(self) -> float:
        return self.t

    def sleep_ms(self, ms: float) -> Any:
        return asyncio.sleep(ms / self.speed / 1000)


class NodeClock:
    """One node's view of the street clock (the interface of ``spnode.clock``): wall time may
    be off by ``skew`` seconds (a clock-skew fault); ticks are the street's."""

    def __init__(self, base: StreetClock) -> None:
        self.base = base
        self.skew = 0.0
        self.valid = True
        self.synced = True

    def ticks_ms(self) -> int:
        return self.base.ticks_ms()

    def now(self) -> float:
        return self.base.t + self.skew

    def sleep_ms(self, ms: float) -> Any:
        return asyncio.sleep(ms / self.base.speed / 1000)


@dataclass
class PoleStats:
    presence_events: int = 0  # own detections the node announced
    neighbour_wakes: int = 0  # neighbours' presence messages that reached it
    passes: int = 0  # people who came within PIR range
    reaches_dark: int = 0  # pedestrians and cyclists who passed it while the sun was down
    walked_in_dark: int = 0  # ... and found the light below the target level
    worst_level: float = 1.0  # the lowest light a passer-by found in the dark
    worst_wait_s: float = 0.0  # the longest someone waited for the target level
    energy_wh: float = 0.0
    baseline_wh: float = 0.0
    batches: int = 0  # measurement batches the node made
    meas_publishes: int = 0  # publishes of batches (more than batches: resends)
    acks_lost: int = 0  # PUBACKs the simulated network dropped (each one a resend)
    boots: int = 1
    crashes: int = 0  # boots that failed before the node ran (a bad app)
    dropped: int = 0  # buffer overflows, lost messages and connects of earlier boots
    lost: int = 0
    connects: int = 0
    power_lost: int = 0  # batches in a RAM buffer when the power went
    faults: list[str] = field(default_factory=list)


class SimNode(Node):  # type: ignore[misc]  # the firmware is untyped (MicroPython)
    """The firmware's Node, counting what the report needs; behaviour unchanged except that
    the street's ticker calls ``control_step`` (the same method the firmware's control task
    calls every 100 ms) instead of a task per node."""

    def __init__(self, *args: Any, vp: VirtualPole, **kw: Any) -> None:
        self.vp = vp
        self.stats = vp.stats
        super().__init__(*args, **kw)

    async def _control(self) -> None:
        return None  # driven by Street._step

    # The firmware's other periodic tasks, driven from the street too (one call per node
    # instead of one asyncio timer and task wake-up per node and period): the firmware's own
    # ``report_step`` every 500 simulated ms and ``sense_step`` every simulated second (from
    # the ticker, like ``control_step``), ``health_step`` every real second and ``wifi_step``
    # every 5 real seconds (the firmware sleeps those with ``asyncio.sleep``), and the street
    # wakes the sender once a real second when it has something pending (the firmware's
    # one-second ``wait_for`` on ``_wake``).
    async def _report(self) -> None:
        return None

    async def _sensing(self) -> None:
        return None

    async def _health(self) -> None:
        return None

    async def _wifi(self) -> None:
        return None

    def sense_tick(self) -> None:
        if not self.safe_mode:  # the firmware runs no sensing task in safe mode
            self.sense_step()

    def sender_tick(self) -> None:
        if self.outbox or self._state_due or len(self.buffer):
            self._wake.set()

    async def _sender(self) -> None:
        c = self.client
        while True:
            if not c.connected:
                await c.up.wait()
            self._wake.clear()
            try:
                while await self._send_one():
                    pass
            except NotConnected:
                continue
            await self._wake.wait()  # or the street's once-a-second sender_tick

    def _presence(self) -> None:
        self.stats.presence_events += 1
        super()._presence()

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        if topic in self.neighbours:
            self.stats.neighbour_wakes += 1
        super()._on_message(topic, payload, retained)

    def report(self) -> Any:
        data = super().report()
        if data is not None:
            self.stats.batches += 1
            if self.vp.record is not None:
                msg = json.loads(data)
                keys = [(r.get("src", ""), r["q"], r["ts"]) for r in msg["readings"]]
                self.vp.record.append((msg["boot"], msg["seq"], keys))
        return data


class VirtualPole:
    def __init__(
        self,
        pole: Pole,
        bdef: dict[str, Any],
        local: dict[str, Any],
        clock: StreetClock,
        sensors: tuple[str, ...],
        keepalive: int,
        flash: Path | None = None,
        record: bool = False,
    ) -> None:
        self.pole = pole
        self.stats = PoleStats()
        self.bdef = bdef
        self.local = local
        self.keepalive = keepalive
        self.clock = NodeClock(clock)
        self.flash = flash
        self.record: list[tuple[int, int, list[tuple[str, str, int]]]] | None = (
            [] if record else None
        )  # with record: every batch made (boot, seq, readings' (src, q, ts)) ...
        self.acked: set[tuple[int, int]] = set()  # ... and those the broker acknowledged
        self.board = FastBoard(bdef)
        b = self.board
        self.pm = b.i2c("main").attach(0x69, FastSps30()) if "pm" in sensors else None
        self.bme = b.i2c("main").attach(0x76, Bme280Device()) if "climate" in sensors else None
        lamp = bdef["lamp"]
        self.lamp_model = LampModel(
            b.pwm(lamp["pwm"]),
            b.pin(lamp["relay"]),
            lamp["rated_w"],
            lamp.get("mains_v", 230.0),
            lamp.get("amps_per_volt", 0.5),
        )
        b.adc(lamp["current_adc"]).source = self.lamp_model.mv
        self.pir = b.pin("pir")
        self.pir_mode = ""  # "", "dead", "stuck" or "noisy"
        self.pir_last = -1e18
        self.env_mode: dict[str, str] = {}  # "pm"/"climate" -> "noisy"
        self.saved_port: int | None = None
        self.net_loss = 0.0  # share of PUBACKs to this node the network drops
        self.net_delay_ms = 0.0  # real ms every packet to this node is held back
        self.bad_image = False  # the next staged app gets corrupted on flash
        self.rng = random.Random(f"net:{pole.id}")  # seeded by the pole (str hash is not)
        # Where in its report period this pole's first boot falls (0..1): a real street's nodes
        # boot at different moments, so their reports do not all fall in the same half-second.
        self.report_phase = 0.0
        self.connect_delay_s = 0.0  # real seconds after the first boot before MQTT connects
        self.on_change: Any = None  # called when ``up`` or ``node`` changes (the street's lists)
        self._up = False  # a Node is running
        self.stopping = False
        self.powered = asyncio.Event()
        self.powered.set()
        self.cut = asyncio.Event()
        self.waits: list[float] = []  # reach times of passers-by still waiting for light
        if flash is not None:
            _flash_init(flash)
        self.node: SimNode = self._boot()  # the first boot always works (a good app)
        self.up = True

    # ---- boots -------------------------------------------------------------------------------
    def _boot(self) -> SimNode:
        kw: dict[str, Any] = {"boot": self.stats.boots}
        if self.flash is not None:
            root = str(self.flash)
            mode = Updater(root, version=VERSION).boot()
            up = Updater(root, version=VERSION)
            if mode == "trial" and not _app_ok(self.flash / "app"):
                raise _Crash(f"app {up.version} does not import")
            kw = {
                "data_dir": str(self.flash / "data"),
                "updater": up,
                "boot_mode": mode,
                "fw_version": up.version,
            }
        node = SimNode(
            self.board, self.local, clock=self.clock, keepalive=self.keepalive, vp=self, **kw
        )
        self._wire(node)
        return node

    def _wire(self, node: SimNode) -> None:
        """The simulated network between this node and the broker (faults ``net``)."""
        client = node.client
        read, publish = client._read_packet, client.publish
        vp = self

        async def read_packet() -> Any:
            pkt = await read()
            if vp.net_delay_ms:
                await asyncio.sleep(vp.net_delay_ms / 1000)
            if pkt[0] == 4 and vp.net_loss and vp.rng.random() < vp.net_loss:  # PUBACK lost
                vp.stats.acks_lost += 1
                return 0, 0, b""  # what the client does with a packet it skips
            return pkt

        async def counted(topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> Any:
            if topic != node.t_meas:
                return await publish(topic, payload, qos, retain)
            vp.stats.meas_publishes += 1
            ok = await publish(topic, payload, qos, retain)
            if ok and vp.record is not None:
                msg = json.loads(payload)
                vp.acked.add((msg["boot"], msg["seq"]))
            return ok

        client._read_packet = read_packet
        client.publish = counted

    async def life(self, log: Any) -> None:
        """Run the node; on a reboot (command, update, power back) boot it again."""
        while True:
            node = self.node
            if self.connect_delay_s and self.stats.boots == 1:
                _delay_connect(node.client, self.connect_delay_s)
            node.start()
            if self.report_phase and self.stats.boots == 1:
                # as if the node had booted report_phase of a period before the street started
                ahead = int(self.report_phase * node.period_s * 1000)
                node._rep_start = ticks_add(node._rep_start, -ahead)
            self.up = True
            stopped = asyncio.ensure_future(node._stop.wait())
            cut = asyncio.ensure_future(self.cut.wait())
            await asyncio.wait({stopped, cut}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            cut.cancel()
            self.up = False
            self.account_energy()
            if self.cut.is_set():  # power cut: no DISCONNECT, the broker sends the last will
                writer = node.client._writer
                node.client._writer = None
                if writer is not None:
                    writer.transport.abort()
                self.board.pwm(self.bdef["lamp"]["pwm"]).duty_u16(0)
            try:
                await asyncio.wait_for(node.shutdown(), 5)
            except Exception as e:  # one stuck connection must not hold up the others
                log(f"{self.pole.id}: shutdown: {e!r}")
            if self.stopping or node.exit_reason == "stop":
                return
            st = self.stats
            st.dropped += node.buffer.dropped
            st.lost += node.lost
            st.connects += node.client.connects
            if self.cut.is_set():
                if self.flash is None:
                    st.power_lost += len(node.buffer)  # a RAM buffer does not survive
                await self.powered.wait()
                self.cut.clear()
                if self.stopping:
                    return
            if self.bad_image and self.flash is not None:
                _corrupt(self.flash / "app.new")
            while True:
                self.stats.boots += 1
                try:
                    self.node = self._boot()
                    break
                except _Crash as e:
                    self.stats.crashes += 1
                    log(f"{self.pole.id}: boot {self.stats.boots} crashed: {e}")
                    await self.clock.sleep_ms(CRASH_MS)
                    if self.stopping:
                        return

    @property
    def up(self) -> bool:
        return self._up

    @up.setter
    def up(self, value: bool) -> None:
        self._up = value
        if self.on_change is not None:
            self.on_change()

    def stop(self) -> None:
        self.stopping = True
        self.node.stop("stop")
        self.powered.set()

    def account_energy(self) -> None:
        lamp = self.node.lamp
        if lamp is not None:
            ms = self.clock.ticks_ms()
            self.stats.energy_wh += lamp.energy_wh(ms) - self.energy_mark
            self.energy_mark = lamp.energy_wh(ms)

    energy_mark = 0.0

    def pulse(self) -> None:
        self.pir.set(1)
        self.pir.set(0)

    def light(self) -> float:
        """The light actually on the street (a failed lamp or a dead node gives none)."""
        if self.lamp_model.broken or not self.up or self.node.lamp is None:
            return 0.0
        return float(self.node.lamp.level)


class _Crash(Exception):
    pass


def _flash_init(flash: Path) -> None:
    app = flash / "app" / "spnode"
    if not app.exists():
        app.mkdir(parents=True)
        (app / "__init__.py").write_text(f'VERSION = "{VERSION}"\n')
    (flash / "data").mkdir(exist_ok=True)


def _app_ok(app: Path) -> bool:
    """What importing the app would find: every .py file compiles."""
    try:
        for f in sorted(app.rglob("*.py")):
            compile(f.read_bytes(), str(f), "exec")
    except (SyntaxError, ValueError, OSError):
        return False
    return True


def _corrupt(staged: Path) -> None:
    """A flash write gone wrong after the download was verified: the files read back as junk."""
    for f in sorted(staged.rglob("*.py")):
        f.write_bytes(b"\xff\xfe\x00 not python (corrupted on flash)\n")


def _delay_connect(client: Any, delay_s: float) -> None:
    """The node's first connection waits ``delay_s`` real seconds (Wi-Fi association after a
    power-on at a different moment): the light runs at once, readings wait in the buffer."""
    run = client.run

    async def delayed() -> None:
        await asyncio.sleep(delay_s)
        await run()

    client.run = delayed


def _freeze(collect: bool = False) -> None:
    """Keep the street's long-lived objects (nodes, boards, connections) out of the cyclic
    garbage collector: with thousands of poles a full collection walks millions of objects that
    live as long as the run (0.5 s pauses at 5,000 poles, the largest control-tick lags);
    frozen, a collection walks only what was made since. ``run`` unfreezes at its end."""
    if collect:
        gc.collect()
    gc.freeze()


def _dead_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()  # nothing listens there: connecting is refused at once
    return port


@dataclass
class _Calls:
    control: list[Any]  # every running node's control_step
    sense: list[list[Any]]  # sense_step by phase (step % 10)
    report: list[list[Any]]  # report_step by phase (step % 5)


@dataclass
class Sample:
    """One point of the report's chart: the street over ``SAMPLE_S`` simulated seconds."""

    t: float
    dark: bool
    level: float  # mean light of the street
    level_min: float
    people: int  # people within PIR range of some pole at the sample time
    presence: int  # presence events the nodes announced during the sample
    wakes: int  # neighbour wakes during the sample


class Street:
    def __init__(
        self,
        layout: Layout,
        world: World,
        broker_url: str,
        creds: dict[str, Credentials] | None = None,
        speed: float = 1.0,
        faults: list[Fault] | None = None,
        sensors: tuple[str, ...] = SENSORS,
        presence_level: float = 1.0,
        keepalive: int = 30,
        log: Any = None,
        flash_dir: Path | None = None,
        record: bool = False,
        service_level: float | None = None,
        service_target: float = 0.95,
        report_period_s: int | None = None,
        connect_spread_s: float | None = None,
        micropython: int = 0,
        ca: str | None = None,
    ) -> None:
        self.layout = layout
        # the CA (PEM) the poles trust on an mqtts:// broker, unless their credentials bring one
        self.ca = ca
        # the last ``micropython`` poles run as MicroPython processes (simulator/mpnodes.py)
        self.micropython = micropython
        self.mp_poles: list[MicroPythonPole] = []
        self.connect_spread_s = connect_spread_s  # None: by the street's size (CONNECT_RATE)
        self.report_period_s = report_period_s  # for nodes without a config (benchmarks)
        self.world = world
        self.broker_url = broker_url
        self.creds = creds or {}
        self.speed = speed
        self.faults = list(faults or [])
        self.sensors = sensors
        self.presence_level = presence_level
        self.target_level = presence_level if service_level is None else service_level
        self.service_target = service_target
        self.keepalive = keepalive
        self.log = log or (lambda msg: None)
        self.flash_dir = flash_dir
        self.record = record
        self.clock = StreetClock(speed, world.t)
        self.poles: list[VirtualPole] = []
        self.lag_ms: list[float] = []
        self.fault_log: list[tuple[float, str]] = []
        self.samples: list[Sample] = []
        self.started_real = 0.0
        self.t0 = world.t
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._restore: list[tuple[float, Fault]] = []
        self._dead_port = _dead_port()
        self._waiting: set[int] = set()  # poles with passers-by waiting for light
        self._noise = random.Random(world.rng.random())
        self._sample_at = world.t
        self._sample_marks = (0, 0)
        self._phases: list[list[VirtualPole]] = [[] for _ in range(10)]
        self._spread_s = 0.0
        self._pir_faulty: list[VirtualPole] = []  # poles whose PIR is stuck or noisy
        self._env_first = True
        self._calls: _Calls | None = None  # the running nodes' step methods, rebuilt on change

    # ---- lifecycle ---------------------------------------------------------------------------
    def _local(self, p: Pole) -> dict[str, Any]:
        u = urlsplit(self.broker_url)
        port = u.port or (8883 if u.scheme == "mqtts" else 1883)
        local: dict[str, Any] = {
            "pole": p.id,
            "node": "n1",
            "wifi": {"ssid": "sim"},
            "broker": f"{u.scheme}://{u.hostname}:{port}",
            "location": {"lat": p.lat, "lon": p.lon},
            "sensors": list(self.sensors),
            "update_key": "00" * 16,
        }
        c = self.creds.get(p.id)
        if c is not None:
            local.update(username=c.username, password=c.password, update_key=c.update_key)
            if c.server_name:
                local["server_name"] = c.server_name
        ca = c.ca if c is not None and c.ca else self.ca
        if ca:
            local["ca"] = ca
        return local

    def stop(self) -> None:
        """End the run (from any thread); run() returns after a clean shutdown."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    def pole(self, pid: str) -> VirtualPole:
        return next(vp for vp in self.poles if vp.pole.id == pid)

    async def run(self, sim_seconds: float | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        bdef = boarddef.load(str(BOARD))
        spread = self.connect_spread_s
        if spread is None:
            spread = connect_spread_s(len(self.layout.poles))
        self._spread_s = spread
        n_mp = min(self.micropython, len(self.layout.poles))
        in_process = self.layout.poles[: len(self.layout.poles) - n_mp]
        if n_mp:
            await self._start_micropython(self.layout.poles[len(in_process) :])
        gc.disable()  # building thousands of nodes: nothing to collect yet (see _freeze)
        for p in in_process:
            flash = self.flash_dir / p.id if self.flash_dir is not None else None
            vp = VirtualPole(
                p,
                bdef,
                self._local(p),
                self.clock,
                self.sensors,
                self.keepalive,
                flash,
                self.record,
            )
            vp.energy_mark = vp.node.lamp.energy_wh(self.clock.ticks_ms())
            if self.report_period_s and vp.node.remote.config is None:
                vp.node.period_s = self.report_period_s  # what a config would set
            r = random.Random(f"phase:{self.world.seed}:{p.id}")
            vp.report_phase = r.random()
            vp.connect_delay_s = r.random() * spread
            self.poles.append(vp)
        gc.enable()
        self._phases = [self.poles[j::10] for j in range(10)]
        for vp in self.poles:
            vp.on_change = self._changed
        self._env(self.clock.t, 0)  # the first environment of every pole, before the clock runs
        lives = [asyncio.create_task(vp.life(self.log)) for vp in self.poles]
        _freeze(collect=True)
        self.started_real = time.monotonic()
        ticker = asyncio.create_task(self._ticker(sim_seconds))
        house = asyncio.create_task(self._housekeeping())
        stopped = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({ticker, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if ticker.done() and not ticker.cancelled() and ticker.exception() is not None:
                self.log(f"world ticker failed: {ticker.exception()!r}")
                raise ticker.exception()  # type: ignore[misc]
        finally:
            ticker.cancel()
            house.cancel()
            stopped.cancel()
            self._finish_waits()
            for vp in self.poles:
                if vp.up:
                    vp.account_energy()
                vp.stop()
            if lives:
                _, pending = await asyncio.wait(lives, timeout=10)
                for t in pending:
                    t.cancel()
            for mp in self.mp_poles:
                await asyncio.to_thread(mp.stop)
            gc.unfreeze()  # the street's objects are garbage again once it is gone

    async def _start_micropython(self, poles: list[Pole]) -> None:
        """Those poles as MicroPython processes, on the street's clock and broker; their flash
        is under ``flash_dir`` (or a temporary directory)."""
        if self.flash_dir is not None:
            work = self.flash_dir / "micropython"
        else:
            work = Path(tempfile.mkdtemp(prefix="streetpole-mp-"))
        image = await asyncio.to_thread(build_node_rom, work / "build")
        for p in poles:
            local = self._local(p)
            local["sensors"] = list(MP_SENSORS)  # every sensor, whatever the street has
            mp = MicroPythonPole(local, work / p.id, image, self.speed, self.clock.t)
            mp.start()
            self.mp_poles.append(mp)
        self.log(f"{len(poles)} poles as MicroPython processes ({image.stat().st_size} B image)")

    # ---- the world drives the boards, the ticker drives the control loops ----------------------
    async def _ticker(self, sim_seconds: float | None) -> None:
        loop = asyncio.get_running_loop()
        clock, speed = self.clock, self.speed
        real0 = loop.time()
        end = None if sim_seconds is None else int(sim_seconds * 1000)
        while True:
            next_real = real0 + (clock.ms + STEP_MS) / 1000 / speed
            await asyncio.sleep(max(MIN_TICK_S, next_real - loop.time()))
            now = loop.time()
            target = int((now - real0) * speed * 1000)
            if end is not None:
                target = min(target, end)
            until = now + MAX_WORK_S
            first = True
            while clock.ms + STEP_MS <= target:
                ms = clock.ms + STEP_MS
                if first:
                    due = real0 + ms / 1000 / speed
                    self.lag_ms.append(max(0.0, loop.time() - due) * 1000)
                    first = False
                self._step(ms)
                if loop.time() > until:
                    break
            if end is not None and clock.ms + STEP_MS > end:
                assert self._stop is not None
                self._stop.set()
                return

    def _changed(self) -> None:
        self._calls = None

    def _build_calls(self) -> _Calls:
        """The bound step methods of the running nodes, in the street's order: calling them from
        flat lists spares the ticker two object look-ups per node and step, which at thousands
        of poles are cache misses (the loop itself was a tenth of the run)."""
        up = [vp for vp in self.poles if vp.up]
        sense: list[list[Any]] = []
        report: list[list[Any]] = []
        for j in range(10):
            ph = [vp for vp in self._phases[j] if vp.up]
            sense.append([vp.node.sense_step for vp in ph if not vp.node.safe_mode])
            report.append([vp.node.report_step for vp in ph])
        report5 = [report[j] + report[j + 5] for j in range(5)]
        self._calls = _Calls([vp.node.control_step for vp in up], sense, report5)
        return self._calls

    async def _housekeeping(self) -> None:
        """The nodes' real-time periodic work, once a real second for the whole street."""
        n = 0
        while True:
            await asyncio.sleep(1)
            n += 1
            if n in FREEZE_AT_S or n <= self._spread_s + 2:
                _freeze()  # the connections made since the start are long-lived too
            for vp in self.poles:
                if vp.up:
                    node = vp.node
                    node.health_step()
                    node.sender_tick()
                    if n % 5 == 0:
                        node.wifi_step()

    def _step(self, ms: int) -> None:
        """One control period of the whole street: world, faults, environment, control."""
        world = self.world
        before = world.t
        clock = self.clock
        clock.ms = ms
        t = clock.t = clock.t0 + ms / 1000
        events = world.advance_to(t)
        dt = world.t - before
        if dt > 0 and world.dark(world.t):
            wh = RATED_W * dt / 3600.0
            for vp in self.poles:
                vp.stats.baseline_wh += wh
        for ev in events:
            self._apply(ev)
        self._faults(t)
        k = ms // STEP_MS
        self._env(t, k)
        calls = self._calls or self._build_calls()
        for control_step in calls.control:
            try:
                control_step()
            except Exception as e:  # as the firmware's control task: keep going
                print("control:", repr(e))
        # sensing every second and the report check every 500 ms, spread over the steps:
        # a tenth of the poles sense at each step (none in safe mode: the firmware runs no
        # sensing task then), and each pole checks its report at every fifth step
        for sense_step in calls.sense[k % 10]:
            try:
                sense_step()
            except Exception as e:
                print("sensing:", repr(e))
        ticks = clock.ticks_ms()
        for report_step in calls.report[k % 5]:
            report_step(ticks)
        if self._waiting:
            self._check_waits(t)
        if t - self._sample_at >= SAMPLE_S:
            self._sample(t)

    def _apply(self, ev: Event) -> None:
        if ev.pole >= len(self.poles):
            return  # a MicroPython pole (the last ones): the walkers do not reach its process
        vp = self.poles[ev.pole]
        st = vp.stats
        if ev.kind == "motion":
            if vp.pir_mode not in ("dead", "stuck"):
                vp.pulse()
        elif ev.kind == "enter":
            st.passes += 1
        elif (
            ev.kind == "reach"
            and self.world.dark(ev.t)
            and self.world.kind_of.get(ev.walker) in SERVED
        ):
            st.reaches_dark += 1
            level = vp.light()
            st.worst_level = min(st.worst_level, level)
            if level < self.target_level - 0.01:
                st.walked_in_dark += 1
                vp.waits.append(ev.t)
                self._waiting.add(ev.pole)

    def _check_waits(self, t: float) -> None:
        for i in list(self._waiting):
            vp = self.poles[i]
            if vp.light() >= self.target_level - 0.01:
                for t0 in vp.waits:
                    vp.stats.worst_wait_s = max(vp.stats.worst_wait_s, t - t0)
                vp.waits.clear()
                self._waiting.discard(i)

    def _finish_waits(self) -> None:
        """Whoever is still waiting at the end waited until the end."""
        for i in self._waiting:
            vp = self.poles[i]
            for t0 in vp.waits:
                vp.stats.worst_wait_s = max(vp.stats.worst_wait_s, self.clock.t - t0)

    def _sample(self, t: float) -> None:
        levels = [vp.light() for vp in self.poles]
        pres = sum(vp.stats.presence_events for vp in self.poles)
        wakes = sum(vp.stats.neighbour_wakes for vp in self.poles)
        p0, w0 = self._sample_marks
        self._sample_marks = (pres, wakes)
        self.samples.append(
            Sample(
                round(t, 1),
                self.world.dark(t),
                round(sum(levels) / len(levels), 4) if levels else 0.0,
                round(min(levels), 3) if levels else 0.0,
                sum(1 for n in self.world.occupancy if n),
                pres - p0,
                wakes - w0,
            )
        )
        self._sample_at = t

    def _env(self, t: float, k: int) -> None:
        """PIR faults, and the environment into each pole's sensors once every ``ENV_EVERY_S``
        simulated seconds: all poles at the first step, then pole i at the steps k with
        (k - i) % ENV_STEPS == 0, so the updates spread evenly over the steps."""
        rng = self._noise
        for vp in self._pir_faulty:
            if vp.pir_mode == "stuck" and t - vp.pir_last >= 2.0:
                vp.pir_last = t
                vp.pulse()  # a PIR stuck triggering: the light never dims
            elif vp.pir_mode == "noisy" and t - vp.pir_last >= 1.0:
                vp.pir_last = t
                if rng.random() < 0.05:
                    vp.pulse()  # false triggers (insects, heat from a passing car)
        if self._env_first:
            self._env_first = False
            due = range(len(self.poles))
        else:
            due = range(k % ENV_STEPS, len(self.poles), ENV_STEPS)
        for i in due:
            vp = self.poles[i]
            e = self.world.env(i, t)
            pm25, pm10, temp, rh = e.pm25, e.pm10, e.temp_c, e.rh
            if vp.env_mode.get("pm") == "noisy":
                pm25 = max(0.0, pm25 * (1 + rng.gauss(0, 0.5)))
                pm10 = max(pm25, pm10 * (1 + rng.gauss(0, 0.5)))
            if vp.env_mode.get("climate") == "noisy":
                temp += rng.gauss(0, 3.0)
                rh = min(100.0, max(0.0, rh + rng.gauss(0, 10.0)))
            if vp.pm is not None and vp.pm.fault in (None, "crc", "truncate"):
                vp.pm.set_pm(pm25 * 0.7, pm25, pm10 * 0.85, pm10)
            if vp.bme is not None and vp.bme.fault in (None, "crc", "truncate"):
                vp.bme.set_env(temp, 1013.0, rh)

    # ---- faults ------------------------------------------------------------------------------
    def _faults(self, t: float) -> None:
        rel = t - self.t0
        while self.faults and self.faults[0].at_s <= rel:
            f = self.faults.pop(0)
            self._inject(f, True)
            if f.duration_s is not None:
                self._restore.append((f.at_s + f.duration_s, f))
                self._restore.sort(key=lambda x: x[0])
        while self._restore and self._restore[0][0] <= rel:
            _, f = self._restore.pop(0)
            self._inject(f, False)

    def _inject(self, f: Fault, on: bool) -> None:
        if f.kind != "outage" and f.pole >= len(self.poles):
            self.log(f"fault {f.kind} on pole {f.pole}, a MicroPython pole: not injected")
            return
        targets = self.poles if f.kind == "outage" else [self.poles[f.pole]]
        what = f.kind + (f" {f.sensor} {f.mode}" if f.kind == "sensor" else "")
        if f.kind in ("skew", "net"):
            what += f" {f.value:g}" + ("" if f.kind == "skew" else f" {f.mode}")
        where = "street" if f.kind == "outage" else targets[0].pole.id
        self.fault_log.append((self.world.t, f"{where}: {what} {'on' if on else 'off'}"))
        self.log(f"fault {'on ' if on else 'off'} {where}: {what}")
        for vp in targets:
            if on:
                vp.stats.faults.append(what)
            self._inject_one(vp, f, on)

    def _inject_one(self, vp: VirtualPole, f: Fault, on: bool) -> None:
        if f.kind in ("offline", "outage"):
            client = vp.node.client
            if on:
                vp.saved_port = client.port
                client.port = self._dead_port  # reconnects are refused until it is back
                writer = client._writer
                if writer is not None:
                    writer.transport.abort()  # no DISCONNECT: the broker sends the last will
            elif vp.saved_port is not None:
                client.port = vp.saved_port
        elif f.kind == "lamp":
            vp.lamp_model.broken = on
        elif f.kind == "power":
            if on:
                vp.powered.clear()
                vp.cut.set()
            else:
                vp.powered.set()
        elif f.kind == "skew":
            vp.clock.skew = f.value if on else 0.0
        elif f.kind == "net":
            if f.mode == "delay":
                vp.net_delay_ms = f.value if on else 0.0
            else:
                vp.net_loss = f.value if on else 0.0
        elif f.kind == "bad_image":
            vp.bad_image = on
        elif f.kind == "sensor":
            if f.sensor == "pir":
                vp.pir_mode = f.mode if on else ""
                if on and f.mode in ("stuck", "noisy"):
                    if vp not in self._pir_faulty:
                        self._pir_faulty.append(vp)
                elif vp in self._pir_faulty:
                    self._pir_faulty.remove(vp)
                return
            dev = vp.pm if f.sensor == "pm" else vp.bme
            if f.mode == "noisy":
                if on:
                    vp.env_mode[f.sensor] = "noisy"
                else:
                    vp.env_mode.pop(f.sensor, None)
            elif dev is not None:
                mode = {"dead": "silent"}.get(f.mode, f.mode)
                dev.fault = mode if on else None

    # ---- the score ---------------------------------------------------------------------------
    def totals(self) -> dict[str, Any]:
        s = [vp.stats for vp in self.poles]
        nodes = [vp.node for vp in self.poles]
        energy = sum(x.energy_wh for x in s)
        base = sum(x.baseline_wh for x in s)
        dark = sum(x.reaches_dark for x in s)
        lag = sorted(self.lag_ms)
        real = time.monotonic() - self.started_real
        sim = self.clock.t - self.t0
        sl = round(1 - sum(x.walked_in_dark for x in s) / dark, 4) if dark else None
        return {
            "poles": len(self.poles) + len(self.mp_poles),
            "micropython_poles": [mp.summary() for mp in self.mp_poles],
            "sim_s": round(sim, 1),
            "real_s": round(real, 1),
            "speed": round(sim / real, 1) if real > 0 else None,
            "trips": self.world.trips,
            "batches": sum(x.batches for x in s),
            "meas_publishes": sum(x.meas_publishes for x in s),
            "acks_lost": sum(x.acks_lost for x in s),
            "buffered": sum(len(n.buffer) for n in nodes),
            "dropped": sum(n.buffer.dropped for n in nodes) + sum(x.dropped for x in s),
            "lost": sum(n.lost for n in nodes) + sum(x.lost for x in s),
            "power_lost": sum(x.power_lost for x in s),
            "connects": sum(n.client.connects for n in nodes) + sum(x.connects for x in s),
            "boots": sum(x.boots for x in s),
            "crashes": sum(x.crashes for x in s),
            "presence_events": sum(x.presence_events for x in s),
            "neighbour_wakes": sum(x.neighbour_wakes for x in s),
            "passes": sum(x.passes for x in s),
            "reaches_dark": dark,
            "walked_in_dark": sum(x.walked_in_dark for x in s),
            "target_level": self.target_level,
            "service_level": sl,
            "service_target": self.service_target,
            "service_ok": None if sl is None else sl >= self.service_target,
            "worst_wait_s": round(max((x.worst_wait_s for x in s), default=0.0), 1),
            "energy_wh": round(energy, 2),
            "baseline_wh": round(base, 2),
            "saving_pct": round(100 * (1 - energy / base), 1) if base > 0 else None,
            "tick_lag_p99_ms": round(lag[int(len(lag) * 0.99)], 1) if lag else None,
            "faults": len(self.fault_log),
        }
