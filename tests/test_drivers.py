"""Sensor and lamp drivers against simulated devices speaking byte-exact frames (healthy,
corrupted, truncated, silent, stuck), on CPython and on the MicroPython unix port (96 KiB heap),
plus board definition validation and protocol validity of the readings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from protocols import codec
from spnode import boarddef
from spnode.board.sim import SimBoard
from spnode.drivers.bme280 import Bme280
from spnode.drivers.no2_cell import No2Cell
from spnode.drivers.sps30 import Sps30
from spnode.sensing.air import climate_readings, no2_readings
from spnode.sensing.pm import PmSampler
from spnode.sim.devices import Bme280Device, Sps30Device
from tests.harness.micropython import run_micropython
from tests.harness.paths import FIRMWARE, ROOT

SCRIPT = ROOT / "tests" / "mp" / "drivers_check.py"
BOARDS = ROOT / "hardware" / "boards"


def _check_output(out: str) -> None:
    lines = out.strip().splitlines()
    fails = [line for line in lines if line.startswith("FAIL")]
    assert not fails, "\n".join(fails)
    assert lines[-1].startswith("done ")
    n = int(lines[-1].split()[1])
    assert n >= 60 and sum(1 for line in lines if line.startswith("ok ")) == n


def test_drivers_on_cpython() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": f"{FIRMWARE}:{ROOT}"},
    )
    assert proc.returncode == 0, proc.stderr
    _check_output(proc.stdout)


def test_drivers_on_micropython(mpy_tree: Path) -> None:
    _check_output(run_micropython(SCRIPT, mpy_root=mpy_tree, heap="96k").stdout)


@pytest.mark.parametrize("path", sorted(BOARDS.glob("*.json")), ids=lambda p: p.name)
def test_board_files_are_valid(path: Path) -> None:
    bdef = boarddef.load(str(path))
    assert bdef["sensors"]


def _esp32() -> dict:
    return json.loads((BOARDS / "streetpole-esp32-v1.json").read_text())


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (lambda b: b.pop("platform"), "platform", "missing"),
        (lambda b: b["adc"]["no2_we"].update(pin=4), "adc.no2_we.pin", "ADC1"),
        (lambda b: b["pwm"]["lamp"].update(pin=34), "pwm.lamp.pin", "input only"),
        (lambda b: b["uart"]["pm"].update(rx=6), "uart.pm.rx", "not usable"),
        (lambda b: b["pins"]["pir"].update(pin=23), "pwm.lamp.pin", "already used"),
        (lambda b: b["sensors"]["pm"].update(i2c="aux"), "sensors.pm.i2c", "names no entry"),
        (lambda b: b["sensors"]["pm"].update(type="sds011"), "sensors.pm.type", "unknown"),
        (lambda b: b["lamp"].update(rated_w=0), "lamp.rated_w", "0..5000"),
        (lambda b: b["lamp"].pop("amps_per_volt"), "lamp.amps_per_volt", "missing"),
        (lambda b: b["uart"]["radar"].update(baud="fast"), "uart.radar.baud", "integer"),
    ],
)
def test_board_errors_name_the_field(change, field: str, words: str) -> None:  # type: ignore[no-untyped-def]
    b = _esp32()
    change(b)
    with pytest.raises(boarddef.BoardDefError) as err:
        boarddef.validate(b)
    assert err.value.field == field
    assert words in str(err.value)


def test_unreadable_board_file(tmp_path: Path) -> None:
    bad = tmp_path / "board.json"
    bad.write_text("{not json")
    with pytest.raises(boarddef.BoardDefError, match="not valid JSON"):
        boarddef.load(str(bad))


def test_readings_are_valid_meas_payloads() -> None:
    bdef = boarddef.load(str(BOARDS / "sim.json"))
    board = SimBoard(bdef)
    i2c = board.i2c("main")
    i2c.attach(0x69, Sps30Device(pm25=14.0))
    i2c.attach(0x76, Bme280Device(18.0, 1002.0, 81.0))
    board.adc("no2_we").set_mv(262.0)
    board.adc("no2_ae").set_mv(231.0)
    ts = 1767225600
    pm = PmSampler(Sps30(i2c), "pm", warmup_s=5)
    for t in range(30):
        pm.step(t)
    readings = climate_readings(Bme280(i2c), ts, 60, "climate")
    rh = readings[1]["v"]
    readings += pm.report(ts, 60, rh=rh)
    readings += no2_readings(No2Cell(board.adc("no2_we"), board.adc("no2_ae")), ts, 60, "no2")
    assert {r["q"] for r in readings} == {
        "temperature", "relativeHumidity", "atmosphericPressure", "pm1", "pm25", "pm10",
        "no2WE", "no2AE", "no2",
    }  # fmt: skip
    assert next(r for r in readings if r["q"] == "pm25")["flags"] == ["humidity_high"]
    payload = codec.encode("meas", {"boot": 1, "seq": 1, "readings": readings})
    assert codec.decode("meas", payload)["readings"] == readings


def test_no_machine_import_outside_board_layer() -> None:
    offenders = []
    for src in (FIRMWARE / "spnode").rglob("*.py"):
        text = src.read_text()
        if src.name != "esp32.py" and ("import machine" in text or "import network" in text):
            offenders.append(str(src.relative_to(FIRMWARE)))
    assert offenders == []
