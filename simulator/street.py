"""The virtual poles: the firmware's own ``spnode.app.Node`` on a simulated board per pole, all
in one asyncio loop with one shared ``ScaledClock``, each with its own MQTT connection and
credentials. A ticker advances the world to the clock and drives the boards: PIR pulses where
people walk, PM and climate into the byte-exact SPS30 and BME280 models, the lamp's current
sense, and the scripted faults. It also keeps the score for the report::

    street = Street(layout, world, "mqtt://127.0.0.1:1883", creds, speed=60, faults=faults)
    await street.run(sim_seconds=3600)        # or street.stop() from anywhere (thread-safe)
    street.report()
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from simulator.layout import Layout, Pole
from simulator.provision import RATED_W, Credentials
from simulator.scenario import Fault
from simulator.world import Event, World
from spnode import boarddef
from spnode.app import Node
from spnode.board.sim import SimBoard
from spnode.clock import ScaledClock
from spnode.sim.devices import Bme280Device, LampModel, Sps30Device

BOARD = Path(__file__).resolve().parent.parent / "hardware" / "boards" / "sim.json"
SENSORS = ("pir", "pm", "climate")
TICK_S = 0.05  # real seconds between world ticks
ENV_EVERY_S = 60.0  # simulated seconds between environment updates of a pole


@dataclass
class PoleStats:
    presence_events: int = 0  # own detections the node announced
    neighbour_wakes: int = 0  # neighbours' presence messages that reached it
    passes: int = 0  # people who came within PIR range
    reaches_dark: int = 0  # people who passed it while the sun was down
    walked_in_dark: int = 0  # ... and found the light below the presence level
    worst_level: float = 1.0  # the lowest light a passer-by found in the dark
    energy_wh: float = 0.0
    baseline_wh: float = 0.0
    faults: list[str] = field(default_factory=list)


class SimNode(Node):  # type: ignore[misc]  # the firmware is untyped (MicroPython)
    """The firmware's Node, counting what the report needs; behaviour unchanged."""

    def __init__(self, *args: Any, stats: PoleStats, **kw: Any) -> None:
        self.stats = stats
        super().__init__(*args, **kw)

    def _presence(self) -> None:
        self.stats.presence_events += 1
        super()._presence()

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        if topic in self.neighbours:
            self.stats.neighbour_wakes += 1
        super()._on_message(topic, payload, retained)


class VirtualPole:
    def __init__(
        self,
        pole: Pole,
        bdef: dict[str, Any],
        local: dict[str, Any],
        clock: ScaledClock,
        sensors: tuple[str, ...],
        keepalive: int,
    ) -> None:
        self.pole = pole
        self.stats = PoleStats()
        self.board = SimBoard(bdef)
        b = self.board
        self.pm = b.i2c("main").attach(0x69, Sps30Device()) if "pm" in sensors else None
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
        self.pir_mode = ""  # "", "dead" or "stuck"
        self.pir_last = -1e18
        self.saved_port: int | None = None
        self.env_at = -1e18
        self.node = SimNode(b, local, clock=clock, keepalive=keepalive, stats=self.stats)
        self.energy0 = 0.0

    def pulse(self) -> None:
        self.pir.set(1)
        self.pir.set(0)

    def light(self) -> float:
        """The light actually on the street (a failed lamp gives none)."""
        if self.lamp_model.broken or self.node.lamp is None:
            return 0.0
        return float(self.node.lamp.level)


def _dead_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()  # nothing listens there: connecting is refused at once
    return port


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
    ) -> None:
        self.layout = layout
        self.world = world
        self.broker_url = broker_url
        self.creds = creds or {}
        self.speed = speed
        self.faults = list(faults or [])
        self.sensors = sensors
        self.presence_level = presence_level
        self.keepalive = keepalive
        self.log = log or (lambda msg: None)
        self.clock = ScaledClock(speed, start=world.t)
        self.poles: list[VirtualPole] = []
        self.lag_ms: list[float] = []
        self.fault_log: list[tuple[float, str]] = []
        self.started_real = 0.0
        self.t0 = world.t
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._restore: list[tuple[float, Fault]] = []
        self._dead_port = _dead_port()

    # ---- lifecycle ---------------------------------------------------------------------------
    def _local(self, p: Pole) -> dict[str, Any]:
        u = urlsplit(self.broker_url)
        local: dict[str, Any] = {
            "pole": p.id,
            "node": "n1",
            "wifi": {"ssid": "sim"},
            "broker": f"{u.scheme}://{u.hostname}:{u.port or 1883}",
            "location": {"lat": p.lat, "lon": p.lon},
            "sensors": list(self.sensors),
            "update_key": "00" * 16,
        }
        c = self.creds.get(p.id)
        if c is not None:
            local.update(username=c.username, password=c.password, update_key=c.update_key)
        return local

    def stop(self) -> None:
        """End the run (from any thread); run() returns after a clean shutdown."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    async def run(self, sim_seconds: float | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        bdef = boarddef.load(str(BOARD))
        for p in self.layout.poles:
            self.poles.append(
                VirtualPole(p, bdef, self._local(p), self.clock, self.sensors, self.keepalive)
            )
        for vp in self.poles:
            vp.energy0 = vp.node.lamp.energy_wh(self.clock.ticks_ms())
            vp.node.start()
        self.started_real = time.monotonic()
        ticker = asyncio.create_task(self._ticker(sim_seconds))
        stopped = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({ticker, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if ticker.done() and not ticker.cancelled() and ticker.exception() is not None:
                self.log(f"world ticker failed: {ticker.exception()!r}")
                raise ticker.exception()  # type: ignore[misc]
        finally:
            ticker.cancel()
            stopped.cancel()
            ms = self.clock.ticks_ms()
            for vp in self.poles:
                vp.stats.energy_wh = vp.node.lamp.energy_wh(ms) - vp.energy0
            await asyncio.gather(*(self._shutdown(vp) for vp in self.poles))

    async def _shutdown(self, vp: VirtualPole) -> None:
        vp.node.stop()
        try:
            await asyncio.wait_for(vp.node.shutdown(), 5)
        except Exception as e:  # one stuck connection must not hold up the report
            self.log(f"{vp.pole.id}: shutdown: {e!r}")

    # ---- the world drives the boards ---------------------------------------------------------
    async def _ticker(self, sim_seconds: float | None) -> None:
        loop = asyncio.get_running_loop()
        world, clock = self.world, self.clock
        rated = RATED_W
        due = loop.time()
        while True:
            due += TICK_S
            await asyncio.sleep(max(0.0, due - loop.time()))
            late = loop.time() - due
            self.lag_ms.append(max(0.0, late * 1000))
            if late > TICK_S:
                due = loop.time()  # behind: measure each tick's own lateness, not the backlog
            now = clock.now()
            end = None if sim_seconds is None else self.t0 + sim_seconds
            if end is not None:
                now = min(now, end)
            before = world.t
            events = world.advance_to(now)
            dt = world.t - before
            if dt > 0 and world.dark(world.t):
                for vp in self.poles:
                    vp.stats.baseline_wh += rated * dt / 3600.0
            for ev in events:
                self._apply(ev)
            self._faults(world.t)
            self._env(world.t)
            if end is not None and world.t + 1e-9 >= end - 0.5:
                assert self._stop is not None
                self._stop.set()
                return

    def _apply(self, ev: Event) -> None:
        vp = self.poles[ev.pole]
        st = vp.stats
        if ev.kind == "motion":
            if not vp.pir_mode:
                vp.pulse()
        elif ev.kind == "enter":
            st.passes += 1
        elif ev.kind == "reach" and self.world.dark(ev.t):
            st.reaches_dark += 1
            level = vp.light()
            st.worst_level = min(st.worst_level, level)
            if level < self.presence_level - 0.01:
                st.walked_in_dark += 1

    def _env(self, t: float) -> None:
        for i, vp in enumerate(self.poles):
            if vp.pir_mode == "stuck" and t - vp.pir_last >= 2.0:
                vp.pir_last = t
                vp.pulse()  # a PIR stuck triggering: the light never dims
            if t - vp.env_at < ENV_EVERY_S:
                continue
            vp.env_at = t + (i % 7)  # staggered, so the updates spread over ticks
            e = self.world.env(i, t)
            if vp.pm is not None and vp.pm.fault is None:
                vp.pm.set_pm(e.pm25 * 0.7, e.pm25, e.pm10 * 0.85, e.pm10)
            if vp.bme is not None and vp.bme.fault is None:
                vp.bme.set_env(e.temp_c, 1013.0, e.rh)

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
        vp = self.poles[f.pole]
        what = f.kind + (f" {f.sensor} {f.mode}" if f.kind == "sensor" else "")
        self.fault_log.append((self.world.t, f"{vp.pole.id}: {what} {'on' if on else 'off'}"))
        self.log(f"fault {'on ' if on else 'off'} {vp.pole.id}: {what}")
        if on:
            vp.stats.faults.append(what)
        if f.kind == "offline":
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
        elif f.kind == "sensor":
            if f.sensor == "pir":
                vp.pir_mode = f.mode if on else ""
            else:
                dev = vp.pm if f.sensor == "pm" else vp.bme
                if dev is not None:
                    dev.fault = ("silent" if f.mode == "dead" else "stuck") if on else None

    # ---- the score ---------------------------------------------------------------------------
    def totals(self) -> dict[str, Any]:
        s = [vp.stats for vp in self.poles]
        nodes = [vp.node for vp in self.poles]
        energy = sum(x.energy_wh for x in s)
        base = sum(x.baseline_wh for x in s)
        dark = sum(x.reaches_dark for x in s)
        lag = sorted(self.lag_ms)
        return {
            "poles": len(self.poles),
            "sim_s": round(self.world.t - self.t0, 1),
            "real_s": round(time.monotonic() - self.started_real, 1),
            "trips": self.world.trips,
            "batches": sum(n.seq for n in nodes),
            "buffered": sum(len(n.buffer) for n in nodes),
            "dropped": sum(n.buffer.dropped for n in nodes),
            "lost": sum(n.lost for n in nodes),
            "connects": sum(n.client.connects for n in nodes),
            "presence_events": sum(x.presence_events for x in s),
            "neighbour_wakes": sum(x.neighbour_wakes for x in s),
            "passes": sum(x.passes for x in s),
            "reaches_dark": dark,
            "walked_in_dark": sum(x.walked_in_dark for x in s),
            "service_level": round(1 - sum(x.walked_in_dark for x in s) / dark, 4)
            if dark
            else None,
            "energy_wh": round(energy, 2),
            "baseline_wh": round(base, 2),
            "saving_pct": round(100 * (1 - energy / base), 1) if base > 0 else None,
            "tick_lag_p99_ms": round(lag[int(len(lag) * 0.99)], 1) if lag else None,
            "faults": len(self.fault_log),
        }
