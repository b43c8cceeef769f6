"""The drivers' time checks across the ticks wrap, on MicroPython or CPython (the same script):
each is given ticks a little before 2**30 ms and then a little after, as an ESP32's read after
12.4 days. Prints PASS/FAIL lines, then OK."""

from spnode import boarddef
from spnode.board.sim import SimBoard
from spnode.compat import TICKS_PERIOD, ticks_add
from spnode.drivers.lamp import Lamp
from spnode.drivers.ld2410 import Ld2410
from spnode.drivers.pir import Pir
from spnode.drivers.pms5003 import Pms5003
from spnode.sim.devices import Ld2410Device, Pms5003Device
from spnode.sim.lamp import LampModel

BDEF = boarddef.load("hardware/boards/sim.json")
T = TICKS_PERIOD - 1500  # 1.5 s before the wrap
failed = []


def check(name, ok, detail=""):
    print("PASS" if ok else "FAIL", name, detail)
    if not ok:
        failed.append(name)


def at(ms):
    """Ticks ``ms`` after T (past the wrap from 1500 on)."""
    return ticks_add(T, ms)


board = SimBoard(BDEF)

# radar: frames until just before the wrap, then silence; the 1 s timeout passes across it
dev = board.uart("radar").attach(Ld2410Device())
radar = Ld2410(board.uart("radar"))
radar.start(at(0))
for ms in range(0, 1400, 100):
    radar.poll(at(ms))
check("radar fine before the wrap", radar.fault is None and radar.frames > 0, radar.fault)
dev.fault = "silent"
radar.poll(at(2200))  # 800 ms after the last frame, past the wrap
check("radar: 800 ms of silence is no fault", radar.fault is None, radar.fault)
radar.poll(at(2600))
check("radar: silence across the wrap is a fault", radar.fault is not None, radar.fault)

# PMS5003: the same with its 3 s timeout
pdev = board.uart("pm").attach(Pms5003Device())
pm = Pms5003(board.uart("pm"))
pm.start(now_ms=at(0))
got = [pm.read(at(ms)) for ms in range(0, 1400, 200)]
check("pms fine before the wrap", pm.fault is None and any(got), pm.fault)
pdev.fault = "silent"
pm.read(at(3000))
check("pms: 1.8 s of silence is no fault", pm.fault is None, pm.fault)
pm.read(at(4500))
check("pms: silence across the wrap is a fault", pm.fault is not None, pm.fault)

# lamp: switched on before the wrap, broken; judged once it settled, after the wrap
pwm, relay = board.pwm("lamp"), board.pin("relay")
model = LampModel(pwm, relay)
board.adc("lamp_current").source = model.mv
lamp = Lamp(pwm, 60, "0-10v", 0.1, relay=relay, current_adc=board.adc("lamp_current"),
            amps_per_volt=0.5)  # fmt: skip
lamp.set_level(1.0, at(0))
model.broken = True
check("lamp: settling before the wrap", lamp.check(at(1000)) is None)
check("lamp: failure judged after the wrap", lamp.check(at(3500)) == "lamp_failure", lamp.fault)
wh = lamp.energy_wh(at(3600 * 1000))  # an hour at 60 W, across the wrap
check("lamp: energy counted across the wrap", 59.9 < wh < 60.1, wh)

# PIR: an edge 100 ms after one before the wrap is a bounce; 300 ms after, a new detection
pin = board.pin("pir")
now = [at(1450)]
pir = Pir(pin, lambda: now[0], debounce_ms=200)
pir.start()
pin.set(1)
pin.set(0)
now[0] = at(1550)
pin.set(1)
pin.set(0)
check("pir: a bounce across the wrap is ignored", pir.take() == 1)
now[0] = at(1750)
pin.set(1)
pin.set(0)
check("pir: a detection after the wrap counts", pir.take() == 1)

# whose ticks arithmetic ran: the port's own (a 32-bit port, as the ESP32) or compat's shim
import time  # noqa: E402

from spnode import compat  # noqa: E402

print("TICKS", "port" if compat.ticks_diff is getattr(time, "ticks_diff", None) else "shim")
print("OK" if not failed else "FAILED %s" % failed)
