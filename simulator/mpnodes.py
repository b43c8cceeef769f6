"""Poles that run as real MicroPython processes, beside the street's in-process poles.

The street (simulator/street.py) runs many poles in one CPython process for scale; a few poles
can instead run as MicroPython unix-port processes, for fidelity: the firmware as the ESP32 runs
it (from a ROMFS image, `fieldtools/unixport.py`), in an ESP32's 96 KiB heap, with its own MQTT
connection and credentials, on the simulated board with every sensor fitted (a simulated device
behind each, spnode/sim/fitted.py). A node that asks for a reset (a reboot
command, an accepted update) gets a new process on the same flash, its clock going on from the
street's time. What they do not get: the street's pedestrians at their PIR (no channel into the
process; they see the street's traffic only through neighbour wake over MQTT), the street's
fault injection, and a new version from an update (their code is the ROMFS image, which the
update's swap of the app directory does not replace; docs/firmware.md). Their heap is in the
run report.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from fieldtools.build import SIM_MANIFEST, build
from fieldtools.unixport import (
    ESP32_HEAP_KIB,
    TLS_HEAP_KIB,
    build_rom,
    interpreter_info,
    micropython_binary,
    rom_command,
)
from hostlib.process import terminate

SCRIPT = Path(__file__).with_name("mp") / "street_node.py"
# The sensors a MicroPython pole carries: every one the board has (PM, climate, NO2, noise,
# PIR and radar; the lamp besides), in an ESP32's 96 KiB (docs/firmware.md, "Memory").
MP_SENSORS = ("pm", "climate", "no2", "noise", "pir", "radar")
BOARD = Path(__file__).resolve().parents[1] / "hardware" / "boards" / "sim.json"


def build_node_rom(work: Path, march: str | None = None) -> Path:
    """The node with its simulated board (firmware/manifest_sim.py) compiled for the unix port
    that runs the poles (or for ``march``, another interpreter's), into a ROMFS image under
    ``work``."""
    march = march or interpreter_info().march
    tree = work / march
    build(tree, "sim", arch=march, manifest=SIM_MANIFEST)
    return build_rom(tree, work / "node.romfs")


class MicroPythonPole:
    """One pole as a MicroPython process; ``lines`` collects the JSON lines it prints."""

    def __init__(
        self,
        local: dict[str, Any],
        flash: Path,
        image: Path,
        speed: float,
        start: float,
        budget_kib: int | None = None,
    ) -> None:
        if budget_kib is None:  # an ESP32's, and room for the TLS context on an mqtts:// broker
            tls = str(local.get("broker", "")).startswith("mqtts://")
            budget_kib = ESP32_HEAP_KIB + (TLS_HEAP_KIB if tls else 0)
            # Without the 32-bit build (no MicroPython source: a fresh clone) the venv's 64-bit
            # port runs the pole, whose objects take twice the room: with every sensor it needs
            # about 130 KiB (docs/firmware.md, "Memory") and did not boot in the ESP32's budget
            # (MemoryError), so it gets the budget in words rather than bytes.
            budget_kib *= interpreter_info().word_bytes // 4
        self.pole = str(local["pole"])
        self.local = local
        self.flash = flash
        self.image = image
        self.speed = speed
        self.start_t = start
        self.budget_kib = budget_kib
        self.lines: list[dict[str, Any]] = []
        self.output: list[str] = []  # everything else it printed (tracebacks, firmware logs)
        self.boots = 0
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._real0 = 0.0  # real time of the first start: the street's clock was at start_t
        self._stopping = False
        self._lock = threading.Lock()  # a restart (reader thread) against stop (caller)

    def start(self) -> None:
        with self._lock:
            if not self._stopping:
                self._start()

    def _start(self) -> None:
        self.flash.mkdir(parents=True, exist_ok=True)
        (self.flash / "data").mkdir(exist_ok=True)
        if not self.boots:
            self._real0 = time.time()
        self.boots += 1
        now = self.start_t + (time.time() - self._real0) * self.speed
        spec = {"board": str(BOARD), "local": self.local, "data_dir": str(self.flash / "data"),
                "speed": self.speed, "start": now}  # fmt: skip
        (self.flash / "spec.json").write_text(json.dumps(spec))
        cmd = rom_command(micropython_binary(), self.image, SCRIPT, str(self.flash / "spec.json"),
                          budget_kib=self.budget_kib)  # fmt: skip
        env = dict(os.environ, MICROPYPATH=".frozen")
        self._proc = subprocess.Popen(
            cmd, cwd=self.flash, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                self.lines.append(json.loads(line))
            except ValueError:
                self.output.append(line.rstrip())
        self._proc.wait()
        if self.lines and self.lines[-1].get("exit") == "reboot":
            self.start()  # the reset the node asked for (from this thread; the old one ends)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def booted(self) -> bool:
        return any("booted" in x for x in self.lines)

    @property
    def heap_peak(self) -> int | None:
        """Largest heap in use it reported (bytes, the ROMFS image's share not counted)."""
        seen = [int(x["heap"]) for x in self.lines if "heap" in x]
        if not seen:
            return None
        return max(seen) - self.image.stat().st_size

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
        if self._proc is None:
            return
        terminate(self._proc)
        if self._reader is not None:
            self._reader.join(timeout=5)

    def summary(self) -> dict[str, Any]:
        last: dict[str, Any] = next((x for x in reversed(self.lines) if "seq" in x), {})
        return {"pole": self.pole, "booted": self.booted, "boots": self.boots,
                "heap_peak": self.heap_peak,
                "batches": last.get("seq"), "exit": self._proc.returncode if self._proc else None,
                "errors": [x for x in self.output if "Error" in x][-3:]}  # fmt: skip
