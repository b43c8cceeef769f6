"""What the import-and-unload trick saves: the node's heap with ``unload`` as shipped against
``unload`` doing nothing (every module stays loaded once imported), on any unix-port build.

    python -m tests.bench.bench_unload [--micropython PATH] [--frozen] [--arch x64|x86]

Runs tests/mp/node_cfgpeak.py (boot with a persisted config, three configs and a command, no
network, deterministic) for lamp + PIR and for every sensor, in both modes: the heap in use
after boot and after the messages, and the smallest heap in which it all passes (found by
bisection, in 1 KiB steps). Code from a ROMFS image of the .mpy tree (compiled for ``--arch``,
read into the heap by fieldtools/mp/romboot.py: the heap figures are net of the image), or with
``--frozen`` from the interpreter's own frozen modules (a build with the firmware frozen in).
Prints a table, then one JSON line per case. docs/firmware.md, "Import and unload", has the
figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

from fieldtools.unixport import ROMBOOT, micropython_binary
from simulator.mpnodes import build_node_rom
from tests.harness.paths import ROOT

SCRIPT = ROOT / "tests" / "mp" / "node_cfgpeak.py"
BOARD = ROOT / "hardware" / "boards" / "sim.json"
SENSORS = {"lamp+pir": "pir", "every sensor": "pir,radar,pm,climate,no2,noise"}
# what the node unloads after use (--each: what keeping each one alone costs)
UNLOADED = (
    "spnode.boarddef", "spnode.nodeconfig", "spnode.nodeinit", "spnode.sensortypes",
    "protocols.topics", "spnode.nodemsg", "spnode.remoteconfig", "spnode.nodecmd",
    "protocols.incoming", "protocols.nodecheck", "protocols.rules", "spnode.dimconf",
    "spnode.astro", "spnode.tzparse",
)  # fmt: skip


def _run(
    cmd: list[str], heap: int, rom: Path | None, sensors: str, mode: str
) -> tuple[bool, dict[str, int]]:
    with tempfile.TemporaryDirectory() as data:
        pre = [str(ROMBOOT), str(rom)] if rom is not None else []
        args = [*cmd, "-X", f"heapsize={heap}", *pre, str(SCRIPT), str(BOARD), data]
        env = dict(os.environ, MICROPYPATH=".frozen")
        proc = subprocess.run(
            [*args, sensors, mode], capture_output=True, text=True, env=env, timeout=120
        )
    figures: dict[str, int] = {}
    for line in proc.stdout.splitlines():
        words = line.split()
        if words and words[0] in ("boot", "after") and words[-1] != "None":
            key = "boot" if words[0] == "boot" else "after_messages"
            number = words[1] if words[1] != "cmd" else words[2]
            figures[key] = int(number)
    return proc.returncode == 0 and proc.stdout.rstrip().endswith("OK"), figures


def _min_heap(cmd: list[str], rom: Path | None, sensors: str, mode: str, base: int) -> int:
    """Smallest -X heapsize (bytes, 1 KiB steps) in which the run passes."""
    lo, hi = base // 1024 + 16, base // 1024 + 400
    while lo < hi:
        mid = (lo + hi) // 2
        ok, _ = _run(cmd, mid * 1024, rom, sensors, mode)
        if ok:
            hi = mid
        else:
            lo = mid + 1
    return lo * 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--micropython", default=micropython_binary())
    ap.add_argument("--frozen", action="store_true", help="code frozen into the interpreter")
    ap.add_argument("--arch", default="x64", help="mpy-cross -march for the ROMFS image")
    ap.add_argument("--each", action="store_true", help="keep one module at a time (lamp+pir)")
    opts = ap.parse_args()
    cmd = [opts.micropython]
    with tempfile.TemporaryDirectory() as work:
        rom = None
        base = 0  # what the image takes of the heap (romboot.py reads it in)
        if not opts.frozen:
            rom = build_node_rom(Path(work), march=opts.arch)
            base = rom.stat().st_size
        rows = []
        if opts.each:
            _, shipped = _run(cmd, base + 600 * 1024, rom, "pir", "unload")
            print(f"{'kept loaded':22} {'boot +B':>8} {'after msgs +B':>14}")
            for name in UNLOADED:
                ok, kept = _run(cmd, base + 600 * 1024, rom, "pir", "keep:" + name)
                assert ok, name
                boot = kept["boot"] - shipped["boot"]
                after = kept["after_messages"] - shipped["after_messages"]
                print(f"{name:22} {boot:8} {after:14}")
            return
        for label, sensors in SENSORS.items():
            for mode in ("unload", "keep"):
                ok, figures = _run(cmd, base + 600 * 1024, rom, sensors, mode)
                assert ok, f"{label} {mode}: fails even in a large heap"
                least = _min_heap(cmd, rom, sensors, mode, base)
                rows.append({"sensors": label, "mode": mode, **figures, "min_heap": least - base})
    print(f"{'sensors':14} {'mode':7} {'boot KiB':>9} {'after msgs':>11} {'min heap':>9}")
    for r in rows:
        print(
            f"{r['sensors']:14} {r['mode']:7} {r['boot'] / 1024:9.1f} "
            f"{r['after_messages'] / 1024:11.1f} {r['min_heap'] / 1024:9.0f}"
        )
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
