"""Drivers against simulated devices that speak byte-exact frames, healthy and faulty.

Runs unchanged on MicroPython and CPython; prints one line per check: "ok NAME" or
"FAIL NAME: detail", then "done N". tests/test_drivers.py runs it on both interpreters.
"""

import gc
import sys

from spnode.board.sim import SimBoard
from spnode.boarddef import validate
from spnode.drivers.bme280 import Bme280, pressure, t_fine, temperature
from spnode.drivers.lamp import Lamp
from spnode.drivers.ld2410 import Ld2410
from spnode.drivers.no2_cell import No2Cell, ppb_to_ugm3
from spnode.drivers.pir import Pir
from spnode.drivers.pms5003 import Pms5003
from spnode.drivers.sps30 import Sps30, crc8
from spnode.sensing.air import climate_readings, no2_readings
from spnode.sensing.pm import PmSampler
from spnode.sim.devices import (
    BME_CALIB,
    Bme280Device,
    Ld2410Device,
    Pms5003Device,
    Sps30Device,
    ld2410_frame,
    pms5003_frame,
)
from spnode.sim.lamp import LampModel

N = [0]


def check(name, cond, detail=""):
    N[0] += 1
    print(("ok " + name) if cond else ("FAIL %s: %s" % (name, detail)))


BDEF = validate(
    {
        "name": "t",
        "platform": "sim",
        "i2c": {"main": {}},
        "uart": {"pm": {"id": 2, "baud": 9600}, "radar": {"id": 1, "baud": 256000}},
        "pins": {"pir": {}, "relay": {}},
        "pwm": {"lamp": {}},
        "adc": {"we": {}, "ae": {}, "cur": {}},
    }
)


def near(a, b, tol):
    return a is not None and abs(a - b) <= tol


def test_sps30():
    check("sps30 crc8 datasheet example", crc8(b"\xbe\xef") == 0x92, crc8(b"\xbe\xef"))
    board = SimBoard(BDEF)
    dev = board.i2c("main").attach(0x69, Sps30Device(pm25=12.5))
    s = Sps30(board.i2c("main"))
    check("sps30 product type", s.product_type() == "00080000", s.product_type())
    check("sps30 not ready before start", not s.data_ready())
    s.start()
    check("sps30 start frame (0x0010 0x0300 crc)", dev.measuring and dev.commands[-1] == 0x10)
    check("sps30 data ready", s.data_ready())
    v = s.read()
    check("sps30 read floats", v is not None and near(v[1], 12.5, 0.5), v)
    s.clean()
    check("sps30 fan cleaning command", dev.cleanings == 1)
    dev.fault = "crc"
    check("sps30 corrupted crc -> fault", s.read() is None and "CRC" in s.fault, s.fault)
    dev.fault = "truncate"
    check("sps30 truncated -> fault", s.read() is None and s.fault is not None, s.fault)
    dev.fault = "silent"
    check("sps30 silent -> fault", s.read() is None and "I2C" in s.fault, s.fault)
    dev.fault = None
    check("sps30 recovers", s.read() is not None and s.fault is None, s.fault)


def test_sps30_sampler():
    board = SimBoard(BDEF)
    dev = board.i2c("main").attach(0x69, Sps30Device(pm1=4.0, pm25=10.0, pm10=20.0))
    pm = PmSampler(Sps30(board.i2c("main")), "pm", warmup_s=20, clean_every_s=3600)
    t = 1000
    for i in range(60):
        pm.step(t + i)
    r = pm.report(1767225600, 60, rh=60.0)
    vals = dict((x["q"], x["v"]) for x in r)
    check("pm sampler trimmed means", near(vals.get("pm25"), 10.0, 0.2), r)
    check("pm sampler no humidity flag at 60%", "flags" not in r[0], r[0])
    for i in range(60, 120):
        pm.step(t + i)
    r = pm.report(1767225660, 60, rh=90.0)
    check("pm sampler humidity_high", r and r[0].get("flags") == ["humidity_high"], r)
    for i in range(120, 3700):
        if i % 10 == 0:
            pm.step(t + i)
    check("pm sampler periodic fan cleaning", dev.cleanings == 1, dev.cleanings)
    pm.report(0, 60)
    dev.fault = "stuck"
    for i in range(3700, 3760):
        pm.step(t + i)
    r = pm.report(1767229200, 60)
    check("pm sampler stuck -> no value", r == [] and "stuck" in pm.fault, (r, pm.fault))
    dev.fault = "crc"
    for i in range(3760, 3820):
        pm.step(t + i)
    r = pm.report(1767229260, 60)
    check("pm sampler crc fault -> no value", r == [] and "CRC" in pm.fault, (r, pm.fault))
    pm2 = PmSampler(Sps30(board.i2c("main")), "pm", warmup_s=30)
    dev.fault = None
    for i in range(10):
        pm2.step(i)
    check("pm sampler warm-up discards", pm2.report(1767229260, 10) == [], pm2.fault)


def test_pms5003():
    board = SimBoard(BDEF)
    uart = board.uart("pm")
    dev = uart.attach(Pms5003Device(pm1=3, pm25=7, pm10=11))
    p = Pms5003(uart)
    p.start(passive=False, now_ms=0)
    check("pms start commands", dev.commands == [(0xE4, 1), (0xE1, 1)], dev.commands)
    v = p.read(100)
    check("pms active frame", v is not None and abs(v[1] - 7) <= 1 and p.errors == 0, (v, p.errors))
    f = pms5003_frame(1, 2, 3)
    p2 = Pms5003(uart)
    n = 0
    for i in range(len(f)):  # byte by byte
        n += p2.feed(f[i : i + 1])
    check("pms byte-wise parse", n == 1 and p2.values[4] == 2, p2.values)
    junk = b"\x42\x00\x4d\x42" + f[:17] + b"\x99" + f + f
    check("pms garbage + truncated resync", p2.feed(junk) == 2, p2.errors)
    dev.fault = "crc"
    v = p.read(1200)
    check("pms bad checksum -> no value", v is None and p.fault == "checksum error", p.fault)
    dev.fault = "truncate"
    p.read(1300)
    dev.fault = None
    v = p.read(1400)
    check("pms truncated frame skipped", v is not None and p.frames >= 2, (v, p.frames))
    dev.fault = "silent"
    for t in range(1500, 6000, 500):
        v = p.read(t)
    check("pms silent -> timeout fault", v is None and "no valid frame" in p.fault, p.fault)
    dev.fault = None
    p3 = Pms5003(uart)
    p3.start(passive=True, now_ms=0)
    v0 = p3.read(10)
    p3.request()
    v1 = p3.read(20)
    check("pms passive mode on request", v0 is None and v1 is not None, (v0, v1))
    dev.pm = (5, 5, 5)
    dev.fault = "stuck"
    s = PmSampler(Pms5003(uart), "pm", warmup_s=0)
    for i in range(20):
        s.step(i)
    check("pms stuck window -> fault", s.report(1767225600, 20) == [], s.fault)


def test_bme280():
    # Bosch datasheet example (BMP280 T/P section): 25.08 degC, 100653.27 Pa
    c = BME_CALIB + (75, 362, 0, 313, 50, 30)  # noqa: RUF005
    tf = t_fine(c, 519888)
    check("bme280 datasheet T", temperature(tf) == 2508, temperature(tf))
    p = pressure(c, tf, 415148) / 256
    check("bme280 datasheet P", near(p, 100653.27, 0.3), p)
    board = SimBoard(BDEF)
    dev = board.i2c("main").attach(0x76, Bme280Device(21.5, 1008.0, 63.0))
    b = Bme280(board.i2c("main"))
    check("bme280 read before trigger -> fault", b.read() is None and "no measurement" in b.fault)
    b.trigger()
    v = b.read()
    ok = v and near(v[0], 21.5, 0.02) and near(v[1], 1008.0, 0.05) and near(v[2], 63.0, 0.05)
    check("bme280 compensated T/P/H", ok, v)
    check("bme280 forced mode", dev.forced == 1 and dev.regs[0xF2] == 1, dev.regs[0xF4])
    r = climate_readings(b, 1767225600, 60, "climate", temp_offset=-0.5)
    check("bme280 readings", r[0]["q"] == "temperature" and near(r[0]["v"], 21.0, 0.02))
    dev.fault = "stuck"
    check("bme280 stuck (0x80000) -> fault", climate_readings(b, 1767225600, 60, "c") == [])
    dev.fault = "silent"
    b.trigger()
    check("bme280 silent -> fault", b.read() is None and "I2C" in b.fault, b.fault)
    dev.fault = None
    b2 = Bme280(board.i2c("main"))
    dev.regs[0xD0] = 0x58
    check("bme280 wrong chip id", not b2.begin() and "chip id" in b2.fault, b2.fault)
    dev.regs[0xD0] = 0x60
    dev.fault = "truncate"
    b3 = Bme280(board.i2c("main"))
    check("bme280 truncated calibration -> fault", not b3.begin() or b3.read() is None, b3.fault)


def test_no2():
    board = SimBoard(BDEF)
    we, ae = board.adc("we"), board.adc("ae")
    cell = No2Cell(we, ae)
    cell.calibrate(we_zero_mv=230.0, ae_zero_mv=228.0, sensitivity_mv_ppb=0.25)
    we.set_mv(240.0)
    ae.set_mv(230.0)
    r = cell.read()
    ppb = ((240 - 230) - (230 - 228)) / 0.25
    check("no2 algorithm 1", r is not None and near(r["ppb"], ppb, 0.1), r)
    check("no2 ug/m3 at 20 degC", near(r["ugm3"], ppb * 1.9125, 0.05), r["ugm3"])
    check("no2 T/P conversion", near(ppb_to_ugm3(10, 0.0, 1013.25), 20.52, 0.01))
    rs = no2_readings(cell, 1767225600, 60, "no2")
    check("no2 raw + calibrated readings", [x["q"] for x in rs] == ["no2WE", "no2AE", "no2"], rs)
    check("no2 calibrated has no flag", "flags" not in rs[2], rs[2])
    c2 = No2Cell(we, ae)
    rs = no2_readings(c2, 1767225600, 60, "no2")
    check("no2 defaults flagged uncalibrated", rs[2].get("flags") == ["uncalibrated"], rs[2])
    we.set_mv(0.0)
    check("no2 ADC at rail -> fault", cell.read() is None and "rail" in cell.fault, cell.fault)
    check("no2 fault -> no readings", no2_readings(cell, 1767225600, 60, "no2") == [])


def test_pir():
    board = SimBoard(BDEF)
    pin = board.pin("pir")
    pir = Pir(pin, board.ticks_ms, debounce_ms=200)
    pir.start()
    for t in (0, 50, 150, 300, 320, 1000):  # bounces within 200 ms are ignored
        board.now_ms = 5000 + t
        pin.set(1)
        pin.set(0)
    check("pir debounced count", pir.take() == 3)
    check("pir take resets", pir.take() == 0)
    before = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0
    pin.set(1)
    pin.set(0)
    board.now_ms += 1000
    pin._handler(pin)
    after = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0
    check("pir irq handler allocates nothing", after == before, after - before)


def test_ld2410():
    board = SimBoard(BDEF)
    uart = board.uart("radar")
    dev = uart.attach(Ld2410Device())
    r = Ld2410(uart)
    r.start(0)
    dev.set_target(1, move_cm=230, move_energy=55, still_cm=120, still_energy=30)
    r.poll(100)
    check("ld2410 moving target", r.state == 1 and r.move_cm == 230 and r.still_cm == 120)
    check("ld2410 presence onset", r.take() == 1 and r.present)
    dev.set_target(0)
    r.poll(200)
    dev.set_target(2, still_cm=80, still_energy=40)
    r.poll(300)
    check("ld2410 still target + new onset", r.state == 2 and r.still_cm == 80 and r.take() == 1)
    f = ld2410_frame(3, 150, 20, 90, 10)
    r2 = Ld2410(uart)
    n = 0
    for i in range(len(f)):
        n += r2.feed(f[i : i + 1])
    check("ld2410 byte-wise parse", n == 1 and r2.state == 3 and r2.detect_cm == 150)
    ack = b"\xfd\xfc\xfb\xfa\x04\x00\xff\x01\x00\x00\x04\x03\x02\x01"
    junk = b"\xf4\xf3\x00" + ack + f[:9] + f + b"\xf4\xf3\xf2\xf1\xff\xff" + f
    check("ld2410 garbage/ack/truncated resync", r2.feed(junk) == 2, r2.errors)
    dev.fault = "crc"
    r.poll(400)
    check("ld2410 bad tail -> fault", r.fault == "bad frame", r.fault)
    dev.fault = "silent"
    r.poll(2000)
    check("ld2410 silent -> timeout fault", r.state is None and "no valid frame" in r.fault)
    dev.fault = "truncate"
    r.poll(2100)
    check("ld2410 truncated -> no state", r.state is None)


def test_lamp():
    board = SimBoard(BDEF)
    pwm, relay, cur = board.pwm("lamp"), board.pin("relay"), board.adc("cur")
    model = LampModel(pwm, relay, rated_w=60.0, amps_per_volt=0.5)
    cur.source = model.mv
    lamp = Lamp(pwm, 60, "0-10v", 0.1, relay=relay, current_adc=cur, amps_per_volt=0.5)
    lamp.set_level(0.5, 0)
    check("lamp duty", pwm.duty_u16() == 32768 and relay.value() == 1, pwm.duty_u16())
    lamp.set_level(1.0, 3600000)  # one hour at 50% of 60 W
    check("lamp energy 30 Wh", near(lamp.energy_wh(3600000), 30.0, 1e-6), lamp.energy_wh(3600000))
    check("lamp energy after 30 min at 100%", near(lamp.energy_wh(5400000), 60.0, 1e-6))
    check("lamp power", lamp.power_w() == 60.0)
    lamp.set_level(0.05, 5400000)
    check("lamp min level on a 0-10 V driver", pwm.duty_u16() == 6554, pwm.duty_u16())
    check("lamp ok with current", lamp.check(5410000) is None, lamp.current_a())
    model.broken = True
    check("lamp failure detected", lamp.check(5420000) == "lamp_failure", lamp.current_a())
    model.broken = False
    lamp.set_level(0, 5430000)
    check("lamp off: relay off, no current", relay.value() == 0 and lamp.check(5440000) is None)
    model.relay_stuck = True
    check("lamp relay stuck detected", lamp.check(5450000) == "relay_stuck", lamp.current_a())
    inv = Lamp(pwm, 60, invert=True)
    inv.set_level(0.25, 0)
    check("lamp inverted output", pwm.duty_u16() == 65535 - 16384, pwm.duty_u16())
    nosense = Lamp(pwm, 60)
    nosense.set_level(1, 0)
    check("lamp without sense: no judgement", nosense.check(10000) is None)


for test in (
    test_sps30,
    test_sps30_sampler,
    test_pms5003,
    test_bme280,
    test_no2,
    test_pir,
    test_ld2410,
    test_lamp,
):
    try:
        test()
    except Exception as e:
        sys.print_exception(e) if hasattr(sys, "print_exception") else None
        print("FAIL %s: raised %r" % (test.__name__, e))
    gc.collect()
print("done", N[0])
