"""The firmware runs the same in-process whether or not the simulator was imported first: the
simulator gives a node what it needs through its constructor (``Node(collect=, observer=)``,
``start(driven=True)``), and importing it changes no firmware module's globals."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.harness.paths import ROOT

# One node on the simulated board with PM, climate and PIR, stepped through two reporting
# periods on a fixed clock; prints its batches, the SPS30 driver's CRC errors, and a
# fingerprint of every firmware module's globals.
SCRIPT = """
import json, sys
PRELUDE
from spnode import boarddef
from spnode.app import Node
from spnode.board.sim import SimBoard
from spnode.sim.devices import Bme280Device, Sps30Device


class Clock:
    def __init__(self):
        self.ms = 0
        self.valid = True

    def ticks_ms(self):
        return self.ms

    def now(self):
        return 1795582800 + self.ms // 1000


def globals_of_firmware():
    out = {}
    for name, mod in sorted(sys.modules.items()):
        if name.split(".")[0] in ("spnode", "protocols") and mod is not None:
            for k, v in sorted(vars(mod).items()):
                if not k.startswith("__"):
                    out[name + "." + k] = getattr(v, "__qualname__", type(v).__name__)
    return out


bdef = boarddef.load(BOARD)
board = SimBoard(bdef)
board.i2c("main").attach(0x69, Sps30Device())
board.i2c("main").attach(0x76, Bme280Device())
clock = Clock()
local = {"pole": "I-1", "node": "n1", "wifi": {"ssid": "sim"}, "broker": "mqtt://127.0.0.1:1",
         "sensors": ["pir", "pm", "climate"], "update_key": "00" * 16}
node = Node(board, local, clock=clock)
batches = []
for second in range(1, 2 * 60 + 1):
    for _ in range(10):
        clock.ms += 100
        node.control_step()
    node.sense_step()
    if second % 60 == 0:
        batches.append(node.report().decode())
print(json.dumps({"batches": batches, "crc_errors": node.sensors.pm.sensor.crc_errors,
                  "collect": node.collect.__module__ + "." + node.collect.__qualname__,
                  "globals": globals_of_firmware()}))
"""


def _run(prelude: str) -> dict[str, object]:
    code = SCRIPT.replace("PRELUDE", prelude).replace(
        "BOARD", repr(str(ROOT / "hardware" / "boards" / "sim.json"))
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT}:{ROOT / 'firmware'}", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.splitlines()[-1])
    return result


def test_a_firmware_run_is_the_same_after_the_simulator_was_imported() -> None:
    alone = _run("")
    after = _run("import simulator.street")
    assert alone["batches"] and len(alone["batches"]) == 2  # type: ignore[arg-type]
    assert "pm25" in alone["batches"][0]  # type: ignore[index]
    assert alone["collect"] == after["collect"] == "gc.collect"
    assert alone["crc_errors"] == after["crc_errors"] == 0
    assert alone["batches"] == after["batches"]
    # importing the simulator rewrote no firmware module's globals (crc8, gc, ...)
    before, later = alone["globals"], after["globals"]
    assert isinstance(before, dict) and isinstance(later, dict)
    changed = {k: (v, later[k]) for k, v in before.items() if k in later and later[k] != v}
    assert changed == {}
