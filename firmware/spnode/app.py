"""The node: every part wired together as asyncio tasks. Runs on the ESP32 (firmware/main.py),
as a MicroPython process on the simulated board, and many times over in one CPython loop (the
simulator): everything a node has comes in through the constructor, nothing is global::

    node = Node(board, local, clock=ScaledClock(60), data_dir="/data")   # local: node.json dict
    reason = await node.run()         # returns "reboot" when a command or the updater asks

Tasks (see docs/firmware.md):

- ``control``: ~10 Hz; presence in, dimmer step, lamp out, watchdog heartbeat. Never awaits the
  network, so the light never waits on a socket.
- ``sensing``: 1 Hz (PM sampling, lamp check), and the microphone at 32 blocks/s if fitted.
- ``report``: every ``report_period_s`` a measurement batch into the store-and-forward buffer.
- ``sender``: publishes acks and events, the retained state, then the buffer oldest first, each
  QoS 1. A batch stays in the buffer until the controller confirms it stored it (``stored``);
  after a reconnect, or when no confirmation came for a while, the unconfirmed ones go again.
- ``commands``: config (validated, persisted, acked) and commands (override, revert, reboot,
  selftest, update), from a small inbox the MQTT callback fills.
- ``health``: feeds the watchdog while control and MQTT are alive; confirms or rolls back an
  update on probation. ``ntp``: clock sync where a time server is configured. ``wifi``: keeps the
  station connected. The MQTT client's own task reconnects with backoff.
"""

import asyncio
import gc

from protocols.errors import ProtocolError
from protocols.outgoing import dump
from spnode import UPDATE_CMD, VERSION, unload
from spnode.compat import const, ticks_add, ticks_diff, ticks_ms
from spnode.dimming import Dimmer, Inputs
from spnode.flash import exists
from spnode.mqtt_client import NotConnected
from spnode.sensing import reading

FW_VERSION = VERSION
CONTROL_MS = const(100)
OUTBOX_MAX = const(16)
INBOX_MAX = const(8)
STATE_EVERY = const(10)  # reporting periods between routine state messages
GC_EVERY_BYTES = const(1024)
RETRY_MS = (0, 1000, 4000)  # pauses before the tries of work that ran out of heap (_retry)
# Sent batches with no confirmation for this long while connected (one lost with the
# controller's connection, say) are sent again; the wait doubles up to _CONFIRM_MAX_MS while
# none comes, so a controller that is away does not fill the broker with copies.
_CONFIRM_MS = const(120000)
_CONFIRM_MAX_MS = const(3600000)


class Node:
    def __init__(
        self,
        board,
        local,
        clock=None,
        host=None,
        port=None,
        username=None,
        password=None,
        ssl=None,
        keepalive=60,
        data_dir=None,
        updater=None,
        boot_mode="normal",
        ntp_host=None,
        fw_version=FW_VERSION,
        boot=None,
        collect=gc.collect,
        observer=None,
    ):
        # ``collect``: the heap collection the node runs after each report and before each
        # message (the simulator, thousands of nodes in one CPython process, passes one that
        # does nothing). ``observer``: told of own presence, a neighbour's and each batch
        # (``presence()``, ``neighbour()``, ``batch(data)``; the simulator's score), or None.
        collect()  # the parts are built in one piece of free heap, not around garbage
        # The state of the run first: the attribute table grows to its size in steps (a
        # table of 59 entries is one piece of 944 bytes on the 64-bit port), and does so here
        # while the heap is still whole, not between the parts below (a boot with a
        # persisted config and buffer found no such piece there).
        self.period_s = 60
        self.level = 1.0
        self.outbox = []  # (topic, payload, qos), oldest first
        self.inbox = []  # (topic, payload)
        self.lost = 0  # outgoing acks/events or incoming messages dropped (full, or unencodable)
        self.acks = 0
        self._wake = asyncio.Event()
        self._work = asyncio.Event()
        self.stopped = asyncio.Event()  # set by stop(); run() then shuts the node down
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
        self._last_ms = 0  # ticks of the last control step (set below, once the clock is)
        self._energy0 = 0.0
        self._dropped_seen = 0
        self._alarms = {}
        self._tasks = []
        self._rep_n = 0  # reporting periods this run (a state message every STATE_EVERY)
        self._rep_start = 0  # ticks at which the reporting period began
        self.board = board
        self.collect = collect
        self.observer = observer
        self.data_dir = data_dir
        self.updater = updater
        self.safe_mode = boot_mode == "safe"
        self.ntp_host = ntp_host
        self.fw = fw_version
        self.seq = 0  # measurement batches this boot
        self.event_seq = 0
        self.neighbours = ()  # presence topics of the configured neighbours
        # the parts, built below (spnode.nodeinit)
        self.local = self.clock = self.boot = None
        self.t_state = self.t_meas = self.t_event = self.t_ack = None
        self.t_presence = self.t_config = self.t_cmd = None
        self.lamp = self.sensors = self.buffer = self.remote = None
        self.dimmer = self.inp = self.health = self.client = None
        from spnode import nodeinit  # builds the parts; not kept (spnode.unload)

        try:
            local = nodeinit.checked(local)
            self.local = lc = _Local(local)
            self.clock = clock = clock if clock is not None else nodeinit.clock()
            self.boot = boot if boot is not None else nodeinit.boot_number(data_dir)
            names = nodeinit.topic_names(lc)
            self.t_state, self.t_meas, self.t_event, self.t_ack = names[:4]
            self.t_presence, self.t_config, self.t_cmd = names[4:7]
            # parts: the drivers first, so the sensor table loaded for them is gone again
            # before the buffer and the client take their share of the heap
            self.lamp = nodeinit.lamp(board)
            self.sensors = nodeinit.sensors(board, lc, clock, self.safe_mode)
            self.buffer = nodeinit.buffer(data_dir)
            self.remote = _Remote(data_dir + "/config.json" if data_dir is not None else None)
            self.dimmer = Dimmer()
            self.inp = Inputs()
            self.health = nodeinit.health(board, clock)
            self.client = nodeinit.client(
                self, local, host, port, username, password, ssl, keepalive, names
            )
            names = local = None
            self._last_ms = self._rep_start = clock.ticks_ms()
        finally:
            nodeinit = None
            unload("spnode.nodeinit", "protocols.topics")  # the node keeps the topic strings
        collect()  # room for checking the persisted config (the codec loads its check)
        from spnode import nodemsg

        try:
            nodemsg.load(self)  # the last program keeps running without the controller
        finally:
            nodemsg = None
            unload("spnode.nodemsg")
        self.control_step()  # the light is set before anything else happens

    # ---- the control loop (no network here) ------------------------------------------------------
    def control_step(self):
        """One control cycle: presence in, dimmer, lamp out. Synchronous and allocation-light."""
        clock = self.clock
        ms = clock.ticks_ms()
        inp = self.inp
        inp.time_valid = clock.valid
        parts = self.sensors
        seen = 0
        if parts.pir is not None:
            seen = parts.pir.take()
        radar = parts.radar
        if radar is not None:
            radar.poll(ms)
            seen += radar.take()
            inp.presence_fault = radar.fault is not None
        inp.presence = seen > 0 or (radar is not None and radar.present)
        if seen:
            self._detections += seen
        if parts.noise is not None:
            inp.noise_dba = parts.noise.last_second
        level = self.dimmer.step(clock.now(), ms, inp)
        if self.dimmer.presence_edge and (
            self._presence_at is None or ticks_diff(ms, self._presence_at) >= 2000
        ):
            self._presence_at = ms
            self._presence()
        dt = ticks_diff(ms, self._last_ms)
        self._last_ms = ms
        if dt > 0:
            self._up_ms += dt
        if 0 < dt < 60000:
            self._lvl_sum += level * dt
            self._lvl_ms += dt
        if self.lamp is not None:
            self.lamp.set_level(level, ms)
        self.level = level
        last = self._state_level
        moved = last is None or level - last > 0.05 or last - level > 0.05
        if moved and (self._state_at is None or ticks_diff(ms, self._state_at) >= 1000):
            self._state_due = True
            self._wake.set()
        self.health.control_tick()
        return level

    def _presence(self):
        """Own presence began: tell the neighbours (QoS 0) and the controller (an event). Not
        while offline: sent after the outage, they would light the neighbours for no one, and
        they would push alarms out of the bounded outbox; the batches count the detections."""
        if self.observer is not None:
            self.observer.presence()
        if not self.clock.valid or not self.client.connected:
            return
        ts = int(self.clock.now())
        src = self.sensors.srcs.get("motion", "motion")
        self._queue(self.t_presence, {"ts": ts, "src": src}, "presence", 0)
        self._event({"kind": "presence", "src": src, "count": 1})

    # ---- messages out --------------------------------------------------------------------------
    def _queue(self, topic, msg, channel, qos=1):
        try:
            data = dump(channel, msg)
        except ProtocolError:
            self.lost += 1
            return
        if len(self.outbox) >= OUTBOX_MAX:
            self.outbox.pop(0)
            self.lost += 1
        self.outbox.append((topic, data, qos))
        self._wake.set()

    def _event(self, msg):
        if not self.clock.valid:
            return
        msg["boot"] = self.boot
        msg["seq"] = self.event_seq
        msg["ts"] = int(self.clock.now())
        self.event_seq += 1
        self._queue(self.t_event, msg, "event")

    def _alarm(self, code, active, detail=None, src=None):
        if self._alarms.get(code, False) == active:
            return
        self._alarms[code] = active
        msg = {"kind": "alarm", "code": code, "active": active}
        if detail:
            msg["detail"] = str(detail)[:200]
        if src:
            msg["src"] = src
        self._event(msg)

    def _ack(self, ident, kind, status, reason=None, checks=None):
        ack = {"id": ident, "kind": kind, "ts": int(self.clock.now()), "status": status}
        if reason is not None:
            ack["reason"] = str(reason)[:200]
        if checks is not None:
            ack["checks"] = checks[:32]
        self.acks += 1
        self._queue(self.t_ack, ack, "ack")

    def state(self):
        """The node state message (a dict), as published retained on ``state``."""
        st = {
            "status": "online",
            "ts": int(self.clock.now()),
            "fw": self.fw,
            "boot": self.boot,
            "uptime_s": self.uptime_s(),
            "heap_free": self.heap_free(),
            "reset_cause": self.board.reset_cause(),
            "level": round(self.level, 3),
            "config_version": self.remote.version,
            "buffered": len(self.buffer),
            "dropped": self.buffer.dropped,
            "safe_mode": self.safe_mode,
        }
        try:
            st["rssi"] = self.board.wlan().status("rssi")
        except Exception:
            pass
        return st

    def heap_free(self):
        self.collect()
        return gc.mem_free() if hasattr(gc, "mem_free") else 0

    def uptime_s(self):
        return self._up_ms // 1000

    async def _send_one(self):
        """Publish the most urgent pending message; False when nothing is pending."""
        c = self.client
        if self.outbox:
            topic, data, qos = self.outbox[0]
            await c.publish(topic, data, qos=qos)
            if self.outbox and self.outbox[0][1] is data:
                self.outbox.pop(0)
            if qos:
                self.health.mqtt_ok()
            return True
        if self._state_due and self.clock.valid:
            self._state_due = False
            st = self.state()
            self._state_level = st["level"]
            self._state_at = self.clock.ticks_ms()
            try:
                data = dump("state", st)
            except ProtocolError:
                self.lost += 1
                return True
            try:
                await c.publish(self.t_state, data, qos=1, retain=True)
            except NotConnected:
                self._state_due = True
                raise
            self.health.mqtt_ok()
            if not self._confirmed:
                self._confirmed = True
                if self.updater is not None:
                    self.updater.healthy()  # control loop ran, MQTT round trip done
            return True
        item = self.buffer.peek()
        if item is not None:
            if await c.publish(self.t_meas, item[1], qos=1):
                if self.buffer.commit(item[0]) and self.buffer.awaiting == 1:
                    self.buffer.heard = ticks_ms()  # the first one awaiting it
                self.health.mqtt_ok()
            return True
        return False

    # ---- messages in -----------------------------------------------------------------------------
    def _on_connect(self, client):
        self._state_due = True  # birth message
        self.buffer.awaiting = 0  # all again: the broker may have lost what it acknowledged
        self._wake.set()

    def _on_message(self, topic, payload, retained):
        if topic.endswith("/stored"):  # its own: the broker lets it read no other node's
            # the controller's confirmation (protocols/README.md): the batches it names leave
            # the buffer. Checked with the channel's generated check, loaded for it.
            try:
                from protocols.incoming import decode

                msg = decode("stored", payload)
                for boot, first, last in msg["batches"]:
                    self.buffer.confirm(boot, first, last)
            except Exception:  # refused, or short of heap: the batches stay and go again
                self.lost += 1
                return
            finally:
                decode = msg = None
                unload("protocols.incoming")  # a handler still running keeps its reference
            buf = self.buffer
            buf.heard = ticks_ms()
            buf.wait = 0
            return
        if topic in self.neighbours:
            if self.observer is not None:
                self.observer.neighbour()
            self.inp.neighbour = True  # the next control step raises the light
            return
        if len(self.inbox) >= INBOX_MAX:
            self.inbox.pop(0)
            self.lost += 1
        self.inbox.append((topic, payload))
        self._work.set()

    async def _handle(self, topic, payload):
        """A config (spnode.nodemsg) or a command (spnode.nodecmd), each loaded for the
        message and unloaded after it (MicroPython keeps a module's code in the heap)."""
        if topic == self.t_config:
            from spnode import nodemsg

            try:
                nodemsg.handle(self, payload)
            finally:
                nodemsg = None
                unload("spnode.nodemsg")
        elif topic == self.t_cmd:
            from spnode import nodecmd

            try:
                await nodecmd.handle(self, payload)
            finally:
                nodecmd = None
                unload("spnode.nodecmd")

    async def _flush(self, timeout_ms=5000):
        """Give the sender a moment to get acks out (e.g. before a reboot; right after a boot
        the connection may still be coming up)."""
        waited = 0
        while self.outbox and waited < timeout_ms:
            self._wake.set()
            await asyncio.sleep(0.05)
            waited += 50

    # ---- tasks -------------------------------------------------------------------------------
    def _sleep(self, ms):
        s = getattr(self.clock, "sleep_ms", None)
        return s(ms) if s is not None else asyncio.sleep(ms / 1000)

    async def _every(self, ms, step, *args):
        """Call ``step`` every ``ms``. A step that raises (a MemoryError above all, when the
        heap is short for a moment) is tried again next time; letting the exception end the
        task would stop that work for good while the watchdog, fed by control and MQTT, kept
        the node alive without it."""
        while True:
            try:
                step(*args)
            except Exception as e:
                print("task:", repr(e))
            await self._sleep(ms)

    def _control(self):
        return self._every(CONTROL_MS, self.control_step)

    # Each periodic task is a loop around a ``*_step`` method, so the simulator can drive the
    # same steps from one street-wide ticker instead of a timer per node.
    def sense_step(self):
        ms = self.clock.ticks_ms()
        if self.sensors.pm is not None:
            self.sensors.pm.step(int(self.clock.now()), ms)
        if self.lamp is not None:
            fault = self.lamp.check(ms)
            self._alarm("lampFailure", fault is not None, fault, "lamp")

    def _sensing(self):
        return self._every(1000, self.sense_step)

    def _microphone(self):
        parts = self.sensors
        return self._every(1000 // 32, parts.noise.read, parts.mic)

    def report_step(self, ms):
        """Close the period if it has run out (checked every 500 ms, so a new
        report_period_s takes effect at once)."""
        buf = self.buffer
        wait = buf.wait or _CONFIRM_MS
        now = ticks_ms()  # real time, as the network's (the simulator's clocks run faster)
        if buf.awaiting and ticks_diff(now, buf.heard) >= wait:
            # no confirmation for a while although batches were sent: send them again
            buf.awaiting = 0
            buf.heard = now
            buf.wait = min(2 * wait, _CONFIRM_MAX_MS)
            self._wake.set()
        if ticks_diff(ms, self._rep_start) < self.period_s * 1000:
            return
        self._rep_start = ms
        self.report()
        self._rep_n += 1
        if self._rep_n % STATE_EVERY == 0:
            self._state_due = True
        dropped = self.buffer.dropped
        if dropped != self._dropped_seen:
            self._dropped_seen = dropped
            self._alarm("bufferOverflow", True, "%d batches dropped" % dropped)
        self.collect()

    def _report_tick(self):
        self.report_step(self.clock.ticks_ms())

    def _report(self):
        return self._every(500, self._report_tick)

    def report(self):
        """Close the reporting period: a measurement batch into the buffer (none without a
        valid clock: readings are never stamped with an invented time)."""
        dur = self.period_s
        ms = self.clock.ticks_ms()
        readings = []
        if not self.clock.valid:
            self._reset_period(ms)
            return None
        ts = int(self.clock.now())
        parts = self.sensors
        srcs = parts.srcs
        temp = p = rh = None
        if parts.bme is not None:
            from spnode.sensing.air import climate_readings

            cal = self.local.calibration
            rs = climate_readings(
                parts.bme, ts, dur, srcs["climate"], cal.get("temperature_offset", 0.0)
            )
            for r in rs:
                if r["q"] == "temperature":
                    temp = r["v"]
                elif r["q"] == "relativeHumidity":
                    rh = r["v"]
                elif r["q"] == "atmosphericPressure":
                    p = r["v"]
            readings.extend(rs)
        if parts.pm is not None:
            readings.extend(parts.pm.report(ts, dur, rh))
        if parts.no2 is not None:
            from spnode.sensing.air import no2_readings

            readings.extend(no2_readings(parts.no2, ts, dur, srcs["no2"], temp, p))
        if parts.noise is not None:
            readings.extend(parts.noise.report(ts, dur, srcs["noise"]))
        if "motion" in srcs:
            readings.append(reading(ts, "presenceCount", self._detections, dur, srcs["motion"]))
        if self.lamp is not None:
            mean = self._lvl_sum / self._lvl_ms if self._lvl_ms else self.level
            wh = self.lamp.energy_wh(ms)
            est = ["estimated"]
            readings.append(reading(ts, "illuminanceLevel", mean, dur, "lamp"))
            readings.append(reading(ts, "powerConsumption", self.lamp.power_w(), None, "lamp"))
            readings.append(reading(ts, "energyConsumed", wh - self._energy0, dur, "lamp", est))
            self._energy0 = wh
        self._reset_period(ms)
        if not readings:
            return None
        batch = {"boot": self.boot, "seq": self.seq, "readings": readings}
        for _ in range(4):  # a reading the codec refuses (out of range) goes, not the batch
            try:
                data = dump("meas", batch)
                break
            except ProtocolError as e:
                i = _index(e.field)
                if i is None:
                    self.lost += 1
                    return None
                readings.pop(i)
                self.lost += 1
        else:
            return None
        self.buffer.push(data, self.boot, self.seq)
        self.seq += 1
        self._wake.set()
        if self.observer is not None:
            self.observer.batch(data)
        return data

    def _reset_period(self, ms):
        self._detections = 0
        self._lvl_sum = 0.0
        self._lvl_ms = 0

    def sender_tick(self):
        """Wake the sender if anything is pending: for a driver that runs the node's steps
        itself (``start(driven=True)``), whose sender waits for this instead of a timer."""
        if self.outbox or self._state_due or len(self.buffer):
            self._wake.set()

    async def _sender(self, wait_s):
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
            except Exception as e:  # as in _every: the next round tries again
                print("sender:", repr(e))
            if wait_s is None:
                await self._wake.wait()
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), wait_s)
            except asyncio.TimeoutError:
                pass

    async def _commands(self):
        while True:
            await self._work.wait()
            self._work.clear()
            while self.inbox:
                topic, payload = self.inbox.pop(0)
                try:
                    await self._retry(self._handle, topic, payload)
                except Exception as e:  # one bad message never stops the others
                    self.lost += 1
                    print("command:", repr(e))
                self.collect()

    async def _retry(self, fn, *args):
        """``fn(*args)``, awaited if it is a coroutine, into a collected heap; a MemoryError is
        tried again after a pause (RETRY_MS), since what the other tasks held at that moment (a
        report, a reconnect) may be gone by then. The last one is raised."""
        last = len(RETRY_MS) - 1
        for i, pause in enumerate(RETRY_MS):
            await self._sleep(pause)
            self.collect()  # the work and its modules into whole free heap, not around garbage
            try:
                result = fn(*args)
                return (await result) if hasattr(result, "send") else result
            except MemoryError:
                if i == last:
                    raise

    def health_step(self):
        up = self.updater
        self.health.feed()
        if up is not None and up.trial_expired(self.uptime_s()):
            up.rollback("not healthy within %d s" % up.trial_s)
            self.stop("reboot")
        if self.health.starved and self.health.starved != "no MQTT round trip":
            print("health:", self.health.starved)

    async def _health(self):  # a step that raises ends it: the watchdog then resets the node
        while True:
            self.health_step()
            await asyncio.sleep(1)

    async def _ntp(self):
        while True:
            ok = await self.clock.sync_ntp(self.ntp_host)
            await asyncio.sleep(3600 if ok else 15)

    def wifi_step(self):
        lc = self.local
        try:
            w = self.board.wlan()
            if not w.isconnected():
                w.active(True)
                w.connect(lc.wifi_ssid, lc.wifi_password)
        except Exception as e:
            print("wifi:", repr(e))

    async def _wifi(self):
        while True:
            self.wifi_step()
            await asyncio.sleep(5)

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self, driven=False, ahead_ms=0):
        """Create the tasks (in the running loop). ``stop`` or a reboot command ends them.

        ``driven``: the caller runs the periodic steps itself (``control_step`` every 100 ms,
        ``report_step`` every 500 ms, ``sense_step`` every second, ``health_step``,
        ``wifi_step``, ``sender_tick``), as the simulator does for a whole street from one
        ticker; the node then starts only its network tasks. ``ahead_ms``: the reporting
        period began that long before now (a street's nodes that booted at other moments)."""
        if hasattr(gc, "threshold"):  # collect every few KiB: the garbage the tasks make between
            # collections is what splits the free heap into holes too small for a config check
            gc.threshold(GC_EVERY_BYTES)
        self._rep_n = 0
        self._rep_start = ticks_add(self.clock.ticks_ms(), -ahead_ms)
        tasks = [] if driven else [self._control(), self._health(), self._wifi()]
        if self.data_dir is not None and exists(self.data_dir + "/" + UPDATE_CMD):
            tasks.append(self._boot_update(driven))
        else:
            tasks += self._running(driven)
        if self.ntp_host and hasattr(self.clock, "sync_ntp"):
            tasks.append(self._ntp())
        if self.safe_mode:
            self._alarm("safeMode", True, "repeated failed boots")
        self._tasks = [asyncio.create_task(t) for t in tasks]

    def _running(self, driven):
        """Measuring and the network: after the light's own tasks, and after a boot's update
        download if there is one (spnode.nodecmd.boot_update)."""
        tasks = [self._sender(None if driven else 1), self._commands(), self.client.run()]
        if not driven:
            tasks.append(self._report())
        if not self.safe_mode:
            if not driven:
                tasks.append(self._sensing())
            if self.sensors.noise is not None:
                tasks.append(self._microphone())
        return tasks

    async def _boot_update(self, driven):
        """The download of an update accepted before this boot, then the other tasks. Only
        the light's control, the watchdog and Wi-Fi run beside it: MQTT's connection, the
        retained messages it brings in, the messages the node sends, and the reports and
        sensing cycles would take the heap the download needs (spnode.nodecmd). Presence
        detections and the light's level still count into the first report's period."""
        from spnode import nodecmd

        try:
            ident = await nodecmd.boot_update(self)
        except Exception as e:  # whatever went wrong, the node goes on to connect and report
            print("update:", repr(e))
            ident = None
        finally:
            nodecmd = None
            unload("spnode.nodecmd")
        if self.stopped.is_set():  # rebooting to try the download again with a fresh heap
            return
        self.collect()
        self._tasks += [asyncio.create_task(t) for t in self._running(driven)]
        if ident is None:
            return
        # staged: acknowledged after this boot's birth message, since the controller takes a
        # birth with the old version after "applied" for a rollback; then the swap, at boot
        waited = 0
        while (self._state_due or not self.client.connected) and waited < 30000:
            await asyncio.sleep(0.05)
            waited += 50
        self._ack(ident, "cmd", "applied")
        await self._flush(30000)
        self.stop("reboot")

    def stop(self, reason="stop"):
        self.exit_reason = reason
        self.stopped.set()

    async def run(self):
        """Run until stopped; returns the reason ("reboot" asks the caller to reset)."""
        self.start()
        await self.stopped.wait()
        await self.shutdown()
        return self.exit_reason

    async def shutdown(self):
        await self.client.stop()
        for t in self._tasks:
            t.cancel()
        self._tasks = []
        self.buffer.close()


class _Local:
    """The values of a checked local config (spnode.nodeconfig.NodeConfig) the node keeps."""

    def __init__(self, c):
        self.pole = c.pole
        self.node = c.node
        self.wifi_ssid = c.wifi_ssid
        self.wifi_password = c.wifi_password
        self.broker = c.broker
        self.tls = c.tls
        self.host = c.host
        self.port = c.port
        self.username = c.username
        self.password = c.password
        self.location = c.location
        self.board = c.board
        self.sensors = c.sensors
        self.calibration = c.calibration
        self.update_key = c.update_key
        self.tls_context = c.tls_context


class _Remote:
    """The remote config in force (``config``: the dict, None before the first), persisted at
    ``path`` (None: RAM only). spnode.nodemsg checks, persists and applies new ones."""

    def __init__(self, path):
        self.path = path
        self.config = None
        self.rejected = 0
        self.digest = None  # SHA-256 of the config's bytes as received (spnode.remoteconfig)

    @property
    def version(self):
        return self.config["version"] if self.config is not None else 0


def _index(field):
    """The reading index in a codec error field such as ``readings[3].v``, or None."""
    if field.startswith("readings["):
        try:
            return int(field[9 : field.index("]")])
        except ValueError:
            return None
    return None
