"""Noise levels on the node: A-weighting against IEC 61672-1 (class 2), LAeq, LA10/LA90, flags,
viper/plain agreement and cost on MicroPython."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from protocols import codec
from spnode.noise.aweight import design, iec_a_db, response_db
from spnode.noise.meter import NoiseMeter
from spnode.sim.audio import Tone
from tests.harness.micropython import run_micropython
from tests.harness.paths import ROOT

RATE = 24000
TS = 1767225600
# IEC 61672-1:2013 Table 3: nominal A-weighting (dB) and class 2 limits (+, -)
IEC = {
    31.5: (-39.4, 3.5, 3.5), 40: (-34.6, 2.5, 2.5), 50: (-30.2, 2.5, 2.5),
    63: (-26.2, 2.5, 2.5), 80: (-22.5, 2.5, 2.5), 100: (-19.1, 2.0, 2.0),
    125: (-16.1, 2.0, 2.0), 160: (-13.4, 2.0, 2.0), 200: (-10.9, 2.0, 2.0),
    250: (-8.6, 1.9, 1.9), 315: (-6.6, 1.9, 1.9), 400: (-4.8, 1.9, 1.9),
    500: (-3.2, 1.9, 1.9), 630: (-1.9, 1.9, 1.9), 800: (-0.8, 1.9, 1.9),
    1000: (0.0, 1.4, 1.4), 1250: (0.6, 1.9, 1.9), 1600: (1.0, 2.6, 2.6),
    2000: (1.2, 2.6, 2.6), 2500: (1.3, 3.1, 3.1), 3150: (1.2, 3.1, 3.1),
    4000: (1.0, 3.6, 3.6), 5000: (0.5, 4.1, 4.1), 6300: (-0.1, 5.1, 5.1),
    8000: (-1.1, 5.6, 5.6),
}  # fmt: skip


def _within(f: float, db: float) -> bool:
    nominal, plus, minus = IEC[f]
    return nominal - minus <= db <= nominal + plus


@pytest.mark.parametrize("f", sorted(IEC))
def test_designed_filter_meets_class_2(f: float) -> None:
    coeffs, gain = design(RATE)
    db = response_db(coeffs, gain, f, RATE)
    assert _within(f, db), (f, db)
    assert abs(db - iec_a_db(f)) < 1.0  # in fact within the class 1 limits everywhere


def _feed(m: NoiseMeter, src: Tone, seconds: float) -> None:
    for _ in range(int(seconds * 32)):
        src.fill(m.buf, m.block)
        m.process()


@pytest.mark.parametrize("f", [31.5, 1000, 8000])
def test_sine_through_plain_path_cpython(f: float) -> None:
    ref = NoiseMeter(RATE)
    _feed(ref, Tone(1000, 80.0, RATE), 1)
    m = NoiseMeter(RATE)
    _feed(m, Tone(f, 80.0, RATE), 1)
    assert m.path == "plain"
    assert _within(f, m.last_second - ref.last_second)


@pytest.mark.parametrize(("f", "db", "expected"), [(1000, 74.0, 74.0), (100, 80.0, 60.9)])
def test_laeq_of_known_sine(f: float, db: float, expected: float) -> None:
    m = NoiseMeter(RATE)
    _feed(m, Tone(f, db, RATE), 2)
    r = {x["q"]: x for x in m.report(TS, 2)}
    assert abs(r["LAeq"]["v"] - expected) <= 0.5
    assert abs(r["LAmax"]["v"] - expected) <= 0.5 and abs(r["LAmin"]["v"] - expected) <= 0.5
    assert r["LAeq"]["flags"] == ["indicative"]


def test_l10_l90_of_known_distribution() -> None:
    m = NoiseMeter(RATE)
    tone = Tone(1000, 70.0, RATE)
    for seconds, db in ((2, 70.0), (6, 60.0), (2, 50.0)):
        tone.set(db_spl=db)
        _feed(m, tone, seconds)
    r = {x["q"]: x["v"] for x in m.report(TS, 10)}
    assert abs(r["LA10"] - 70.0) <= 0.5, r
    assert abs(r["LA90"] - 50.0) <= 0.5, r
    assert abs(r["LAmax"] - 70.0) <= 0.5 and abs(r["LAmin"] - 50.0) <= 0.5
    # LAeq: energy mean of 2 s at 70, 6 s at 60, 2 s at 50
    assert abs(r["LAeq"] - 64.3) <= 0.5


def test_histogram_percentiles() -> None:
    m = NoiseMeter(RATE)
    for db, n in ((75.0, 15), (65.0, 70), (45.0, 15)):
        for _ in range(n):
            m.add_level(db)
    assert m.percentile(0.1) == 75.25
    assert m.percentile(0.5) == 65.25
    assert m.percentile(0.9) == 45.25


def test_flags_overload_floor_partial_and_calibration() -> None:
    m = NoiseMeter(RATE, floor_dba=35, offset_db=1.5)
    _feed(m, Tone(1000, 125.0, RATE), 1)
    r = m.report(TS, 60)
    assert set(r[0]["flags"]) == {"indicative", "overload", "partial"}
    m = NoiseMeter(RATE, floor_dba=45, offset_db=1.5)
    _feed(m, Tone(1000, 40.0, RATE), 1)
    r = m.report(TS, 1)
    assert r[0]["flags"] == ["indicative", "below_floor"]
    assert abs(r[0]["v"] - 41.5) <= 0.5  # the per-unit offset is applied
    assert m.report(TS, 1) == []  # nothing measured: no value, never an invented one
    payload = codec.encode("meas", {"boot": 1, "seq": 2, "readings": r})
    assert codec.decode("meas", payload)["readings"][0]["q"] == "LAeq"


def test_silent_microphone_reads_floor() -> None:
    m = NoiseMeter(RATE, floor_dba=35)
    tone = Tone(1000, 60.0, RATE)
    tone.fault = "silent"
    _feed(m, tone, 1)
    r = m.report(TS, 1)
    assert "below_floor" in r[0]["flags"]


def test_noise_on_micropython(mpy_tree: Path) -> None:
    out = run_micropython(ROOT / "tests" / "mp" / "noise_check.py", mpy_root=mpy_tree).stdout
    lines = [json.loads(line) for line in out.splitlines()]
    bands = {x["band"]: x for x in lines if "band" in x}
    assert set(bands) == set(IEC)
    for f, x in bands.items():
        assert x["path"] == "viper"
        assert _within(f, x["db"]), (f, x["db"])
    agree = next(x for x in lines if "agree" in x)
    assert agree == {"agree": True, "fast": "viper"}
    cost = next(x for x in lines if "cost" in x)["cost"]
    assert cost["viper"] < cost["plain"]
    laeq = next(x for x in lines if "laeq" in x)
    assert abs(laeq["laeq"] - 74.0) <= 0.5
    heap = next(x for x in lines if "heap" in x)["heap"]
    print("noise on MicroPython:", cost, heap)
    assert heap["import_bytes"] + heap["meter_bytes"] < 32 * 1024
