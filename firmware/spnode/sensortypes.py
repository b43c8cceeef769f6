"""Every sensor type a node knows, in one table (as ESPHome's components): the bus it hangs on,
its driver, the registry module it belongs to, its self-test probe and its simulated device.

The board definition (spnode.boarddef), the node (spnode.nodeinit), the self-test
(spnode.selftest), the field tools (provisioning, the virtual node's wiring) and the simulator
read this table; adding a sensor type is a row here and its three functions (docs/firmware.md,
"Adding a sensor"). Why a tuple table with functions: the node loads it for a job (boot, a
self-test) and unloads it after; the drivers are imported inside the functions, so only the
drivers of the sensors fitted are ever loaded.

    from spnode.sensortypes import TYPES, BUS, FIELDS

    TYPES["sps30"][BUS]       # 'i2c'
"""

# The columns of a row
BUS = 0  # the board definition's section naming the bus ("i2c", "uart", "adc", "pins", "i2s")
FIELDS = 1  # the sensor's fields naming an entry of that section
MODULE = 2  # the registry module the sensor belongs to (air, noise, motion)
OPEN = 3  # fit(parts, board, s, name, clock, cal, bdef): the driver into spnode.sensing.Sensors
PROBE = 4  # probe(board, s) -> (ok, reason): the technician's self-test
SIMULATE = 5  # simulate(board, s, bdef) -> the simulated device attached (or None)


# ---- drivers (the node at boot) ------------------------------------------------------------
def _fit_pir(parts, board, s, name, clock, cal, bdef):
    from spnode.drivers.pir import Pir

    parts.pir = Pir(board.pin(s["pin"]), clock.ticks_ms, s.get("debounce_ms", 200))
    parts.pir.start()
    parts.srcs["motion"] = name


def _fit_ld2410(parts, board, s, name, clock, cal, bdef):
    from spnode.drivers.ld2410 import Ld2410

    parts.radar = Ld2410(board.uart(s["uart"]))
    parts.radar.start(clock.ticks_ms())
    parts.srcs["motion"] = name


def _fit_sps30(parts, board, s, name, clock, cal, bdef):
    from spnode.drivers.sps30 import Sps30
    from spnode.sensing.pm import PmSampler

    parts.pm = PmSampler(Sps30(board.i2c(s["i2c"]), s.get("addr", 0x69)), name)


def _fit_pms5003(parts, board, s, name, clock, cal, bdef):
    from spnode.drivers.pms5003 import Pms5003
    from spnode.sensing.pm import PmSampler

    parts.pm = PmSampler(Pms5003(board.uart(s["uart"])), name)


def _fit_bme280(parts, board, s, name, clock, cal, bdef):
    from spnode.drivers.bme280 import Bme280

    parts.bme = Bme280(board.i2c(s["i2c"]), s.get("addr", 0x76))
    parts.bme.begin()
    parts.srcs["climate"] = name


def _no2_cell(board, s):
    from spnode.drivers.no2_cell import No2Cell

    return No2Cell(board.adc(s["we"]), board.adc(s["ae"]), s.get("n", 1.0), s.get("gain", 1.0))


def _fit_no2(parts, board, s, name, clock, cal, bdef):
    parts.no2 = _no2_cell(board, s)
    parts.no2.calibrate(
        cal.get("no2_we_zero_mv"), cal.get("no2_ae_zero_mv"), cal.get("no2_sensitivity_mv_ppb")
    )
    parts.srcs["no2"] = name


def _fit_mic(parts, board, s, name, clock, cal, bdef):
    from spnode.noise.meter import NoiseMeter

    parts.noise = NoiseMeter(
        bdef["i2s"][s["i2s"]]["rate"],
        s.get("sensitivity_dbfs", -26.0),
        cal.get("noise_offset_db", 0.0),
        s.get("floor_dba"),
    )
    parts.mic = board.i2s(s["i2s"])
    parts.srcs["noise"] = name


# ---- self-test probes (spnode.selftest) ----------------------------------------------------
def wait(board, ms, poll, step=100):
    """Call poll() every `step` ms (board time) until it returns non-None or ms elapse."""
    waited = 0
    while True:
        v = poll()
        if v is not None or waited >= ms:
            return v
        board.sleep_ms(step)
        waited += step


def _probe_sps30(board, s):
    from spnode.drivers.sps30 import Sps30

    dev = Sps30(board.i2c(s["i2c"]), s.get("addr", 0x69))
    dev.wake()
    kind = dev.product_type()
    if kind is None:
        return False, dev.fault
    if not kind.startswith("0008"):
        return False, "product type %r is not an SPS30" % kind
    if not dev.start():
        return False, dev.fault
    v = wait(board, 3000, lambda: dev.read_pm() if dev.data_ready() else None)
    if v is None:
        return False, dev.fault or "no data within 3 s"
    return True, "pm2.5 %.1f ug/m3 (warm-up not applied)" % v[1]


def _probe_pms5003(board, s):
    from spnode.drivers.pms5003 import Pms5003

    dev = Pms5003(board.uart(s["uart"]))
    dev.start(now_ms=board.ticks_ms())
    v = wait(board, 4000, lambda: dev.read(board.ticks_ms()))
    if v is None:
        return False, dev.fault or "no valid frame within 4 s"
    return True, "pm2.5 %d ug/m3, %d frames, %d bad" % (v[1], dev.frames, dev.errors)


def _probe_bme280(board, s):
    from spnode.drivers.bme280 import Bme280

    dev = Bme280(board.i2c(s["i2c"]), s.get("addr", 0x76))
    if not dev.begin() or not dev.trigger():
        return False, dev.fault
    board.sleep_ms(20)
    v = dev.read()
    if v is None:
        return False, dev.fault
    return True, "%.1f degC %.0f hPa %.0f %%RH" % v  # read() gives (t, p, h)


def _probe_no2(board, s):
    cell = _no2_cell(board, s)
    r = cell.read()
    if r is None:
        return False, cell.fault
    return True, "WE %.0f mV AE %.0f mV" % (r["we_mv"], r["ae_mv"])


def _probe_pir(board, s):
    from spnode.drivers.pir import Pir

    pir = Pir(board.pin(s["pin"]), board.ticks_ms)
    return True, "pin reads %d (walk past to see the count rise)" % pir.level()


def _probe_ld2410(board, s):
    from spnode.drivers.ld2410 import Ld2410

    dev = Ld2410(board.uart(s["uart"]))
    dev.start(board.ticks_ms())

    def poll():
        dev.poll(board.ticks_ms())
        return dev.state if dev.frames else None

    v = wait(board, 1500, poll)
    if v is None:
        return False, dev.fault or "no valid frame within 1.5 s"
    return True, "target state %d, %d frames, %d bad" % (v, dev.frames, dev.errors)


def _probe_mic(board, s):
    from spnode.noise.meter import CLIP, NoiseMeter

    m = NoiseMeter(board.bdef["i2s"][s["i2s"]]["rate"], s.get("sensitivity_dbfs", -26.0))
    i2s = board.i2s(s["i2s"])
    lo = hi = None
    for _ in range(8):
        i2s.readinto(m.buf)
        for i in range(0, m.block, 7):
            v = m.buf[i]
            lo = v if lo is None or v < lo else lo
            hi = v if hi is None or v > hi else hi
        m.process()
    if hi == lo:
        return False, "microphone data constant (%d): not connected or dead" % lo
    if m.out[2] >= CLIP:
        return False, "microphone clipping"
    return True, "about %.0f dB(A), %s path" % (m.level(m._fast), m.path)


# ---- simulated devices (spnode.sim: the simulator, the virtual node, spnode.sim.fitted) ----
# healthy and in range: what the MicroPython poles, the tests and the virtual node carry
MIC_HZ = 1000  # the microphone hears a 1 kHz tone, 24 samples a period at 24 kHz
MIC_DB = 62.0
NO2_MV = (240.0, 230.0)  # working and auxiliary electrode: a few tens of ppb


def _sim_sps30(board, s, bdef):
    from spnode.sim.devices import Sps30Device

    return board.i2c(s["i2c"]).attach(s.get("addr", 0x69), Sps30Device())


def _sim_bme280(board, s, bdef):
    from spnode.sim.devices import Bme280Device

    return board.i2c(s["i2c"]).attach(s.get("addr", 0x76), Bme280Device())


def _sim_pms5003(board, s, bdef):
    from spnode.sim.devices import Pms5003Device

    return board.uart(s["uart"]).attach(Pms5003Device())


def _sim_ld2410(board, s, bdef):
    from spnode.sim.devices import Ld2410Device

    return board.uart(s["uart"]).attach(Ld2410Device())


def _sim_no2(board, s, bdef):
    board.adc(s["we"]).set_mv(NO2_MV[0])
    board.adc(s["ae"]).set_mv(NO2_MV[1])
    return None


def _sim_pir(board, s, bdef):
    return None  # the pin itself: the simulation sets it


def _sim_mic(board, s, bdef):
    from spnode.sim.audio import Looped, Tone

    rate = bdef["i2s"][s["i2s"]]["rate"]
    tone = Tone(MIC_HZ, MIC_DB, rate, s.get("sensitivity_dbfs", -26.0))
    return board.i2s(s["i2s"]).attach(Looped(tone, rate // MIC_HZ))


# type: (bus section, fields naming its entries, registry module, fit, probe, simulate)
TYPES = {
    "sps30": ("i2c", ("i2c",), "air", _fit_sps30, _probe_sps30, _sim_sps30),
    "pms5003": ("uart", ("uart",), "air", _fit_pms5003, _probe_pms5003, _sim_pms5003),
    "bme280": ("i2c", ("i2c",), "air", _fit_bme280, _probe_bme280, _sim_bme280),
    "no2_cell": ("adc", ("we", "ae"), "air", _fit_no2, _probe_no2, _sim_no2),
    "pir": ("pins", ("pin",), "motion", _fit_pir, _probe_pir, _sim_pir),
    "ld2410": ("uart", ("uart",), "motion", _fit_ld2410, _probe_ld2410, _sim_ld2410),
    "inmp441": ("i2s", ("i2s",), "noise", _fit_mic, _probe_mic, _sim_mic),
    "ics43434": ("i2s", ("i2s",), "noise", _fit_mic, _probe_mic, _sim_mic),
}
