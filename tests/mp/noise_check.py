"""Noise pipeline on MicroPython: A-weighting of synthetic sines through the real fixed-point
path, viper vs plain agreement, cost relative to real time, heap use.

Prints JSON lines: {"band": f, "db": response} for the IEC 61672-1 bands, then {"agree": bool},
{"cost": {...}}, {"heap": {...}}. tests/test_noise.py checks them.
"""

import gc
import json
import math
import time

gc.collect()
FREE0 = gc.mem_free()

from spnode.noise import kernel  # noqa: E402
from spnode.noise.meter import NoiseMeter  # noqa: E402
from spnode.sensing.pm import PmSampler  # noqa: E402, F401
from spnode.sim.audio import Noise, Tone  # noqa: E402

gc.collect()
IMPORT_BYTES = FREE0 - gc.mem_free()
RATE = 24000
BANDS = (31.5, 40, 50, 63, 80, 100, 125, 160, 200, 250, 315, 400, 500, 630, 800, 1000, 1250,
         1600, 2000, 2500, 3150, 4000, 5000, 6300, 8000)  # fmt: skip


def band_energy(m, tone, settle=4, blocks=8):
    total = 0.0
    for i in range(settle + blocks):
        tone.fill(m.buf, m.block)
        m.process()
        if i >= settle:
            total += m.out[0] * 65536 + m.out[1]
    return total / (blocks * m.block)


m = NoiseMeter(RATE)
gc.collect()
METER_BYTES = FREE0 - IMPORT_BYTES - gc.mem_free()
ref = None
for f in (1000,) + BANDS:  # noqa: RUF005
    for i in range(12):
        m.st[i] = kernel.OFFSET
    e = band_energy(m, Tone(f, 90.0, RATE))
    db = 10 * math.log10(e)
    if ref is None:
        ref = db
        continue
    print(json.dumps({"band": f, "db": db - ref, "path": m.path}))
    gc.collect()

# viper and plain: bit-identical on a mix of noise and a loud tone, several blocks
fast, name = kernel.select(True)
plain = kernel.process
a = NoiseMeter(RATE)
b = NoiseMeter(RATE, fast=False)
src1, src2 = Noise(70.0), Tone(440, 100.0, RATE)
same = True
for i in range(6):
    (src1 if i % 2 else src2).fill(a.buf, a.block)
    for j in range(a.block):
        b.buf[j] = a.buf[j]
    fast(a.buf, a.block, a.st, a.co, a.out)
    plain(b.buf, b.block, b.st, b.co, b.out)
    same = same and list(a.out) == list(b.out) and list(a.st) == list(b.st)
print(json.dumps({"agree": same, "fast": name}))

# cost: seconds of CPU per second of audio, whole meter (kernel + levels), per path
cost = {}
for label, use_fast in (("viper", True), ("plain", False)):
    mm = NoiseMeter(RATE, fast=use_fast)
    Noise(60.0).fill(mm.buf, mm.block)
    t0 = time.ticks_us()
    for _ in range(32):
        mm.process()
    cost[label] = time.ticks_diff(time.ticks_us(), t0) / 1e6
    cost[label + "_path"] = mm.path
    del mm
    gc.collect()
print(json.dumps({"cost": cost}))

mm = NoiseMeter(RATE, sensitivity_dbfs=-26, offset_db=0.0, floor_dba=35)
t = Tone(1000, 74.0, RATE)
gc.collect()
before = gc.mem_free()
for _ in range(64):
    t.fill(mm.buf, mm.block)
    mm.process()
r = mm.report(1767225600, 2, "noise")
gc.collect()
print(json.dumps({"laeq": r[0]["v"], "flags": r[0]["flags"]}))
print(
    json.dumps(
        {
            "heap": {
                "import_bytes": IMPORT_BYTES,
                "meter_bytes": METER_BYTES,
                "run_retained_bytes": before - gc.mem_free(),
                "free_after": gc.mem_free(),
            }
        }
    )
)
