"""`make bench-firmware`: the node firmware's memory and CPU on the MicroPython unix port.

- heap in use after boot (modules imported from a ROMFS image of the .mpy tree, as the node
  carries them, see fieldtools/unixport.py; Node built with its persisted config) and after
  10,000 control cycles (100 ms each, presence every 20 s, a batch into the flash buffer every
  minute): gc.mem_alloc() after a collection, minus the interpreter's own;
- total size of the .mpy files as deployed to the ESP32 (mpy-cross -march=xtensawin);
- the noise pipeline (A-weighting, levels) as CPU time per second of audio at 24 kHz, plain
  Python and viper (below 1 it keeps up with real time; tests/mp/noise_check.py measures it).

The node is first tried in a 96 KiB heap besides the image (ESP32 without PSRAM); the figures
come from a run with HEAP_KB (NODE_HEAP_KIB, the heap the whole-firmware test uses), see
docs/firmware.md, "Memory".
Last line: heap_boot_kb=<n> heap_10k_cycles_kb=<n> mpy_total_kb=<n> noise_rt_x=<n>
noise_rt_x_viper=<n>
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from fieldtools.unixport import build_rom
from tests.harness.micropython import NODE_HEAP_KIB, run_micropython
from tests.harness.mpy import compile_tree
from tests.harness.paths import ROOT

NODE_BENCH = ROOT / "tests" / "mp" / "node_bench.py"
NOISE = ROOT / "tests" / "mp" / "noise_check.py"
BOARD = ROOT / "hardware" / "boards" / "sim.json"
SENSORS = "pir"  # the sensors of the whole-firmware test (lamp and PIR)
HEAP_KB = NODE_HEAP_KIB  # tests/harness/micropython.py
CYCLES = 10_000


def _json_lines(out: str) -> list[dict[str, object]]:
    return [json.loads(x) for x in out.splitlines() if x.startswith("{")]


def node_run(rom: Path, heap: str, work: Path) -> tuple[bool, list[dict[str, object]], str]:
    work.mkdir(parents=True, exist_ok=True)
    proc = run_micropython(
        NODE_BENCH, str(BOARD), str(work), SENSORS, str(CYCLES),
        heap=heap, rom=rom, check=False, timeout=300,
    )  # fmt: skip
    return proc.returncode == 0, _json_lines(proc.stdout), proc.stderr + proc.stdout


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        esp = compile_tree(t / "xtensawin", march="xtensawin")
        mpy_total = sum(esp.values())
        print(f"mpy: {len(esp)} modules, {mpy_total / 1024:.1f} KiB for the ESP32 (xtensawin)")
        tree = t / "x64"
        compile_tree(tree, march="x64")
        rom = build_rom(tree, t / "node.romfs")
        print(f"ROMFS image (x64 .mpy): {rom.stat().st_size / 1024:.1f} KiB, flash not heap")

        ok, _lines, out = node_run(rom, "96k", t / "flash96")
        last = out.strip().splitlines()[-1] if out.strip() else ""
        print(f"node in a 96 KiB heap: {'runs' if ok else 'does not fit: ' + last}")
        ok, lines, out = node_run(rom, f"{HEAP_KB}k", t / "flash")
        if not ok:
            raise SystemExit(f"node bench failed in {HEAP_KB} KiB:\n{out}")
        imp, boot, run = lines[0], lines[1], lines[2]
        print(f"node in a {HEAP_KB} KiB heap: imports {int(imp['import']) / 1024:.1f} KiB, "
              f"after boot {int(boot['boot']) / 1024:.1f} KiB, after {CYCLES} control cycles "
              f"{int(run['heap']) / 1024:.1f} KiB; {float(run['us_per_cycle']):.1f} us per cycle "
              f"on this x64 host; {run['batches']} batches reported")  # fmt: skip

        proc = run_micropython(NOISE, mpy_root=tree, heap="96k", timeout=300)
        cost = next(x["cost"] for x in _json_lines(proc.stdout) if "cost" in x)
        assert isinstance(cost, dict)
        print(
            f"noise pipeline at 24 kHz: plain {cost['plain']:.4f} s, viper {cost['viper']:.4f} s"
            " of CPU per second of audio (unix port on this host, not an ESP32)"
        )

    print(
        f"heap_boot_kb={int(boot['boot']) / 1024:.1f} "
        f"heap_10k_cycles_kb={int(run['heap']) / 1024:.1f} "
        f"mpy_total_kb={mpy_total / 1024:.1f} "
        f"noise_rt_x={cost['plain']:.4f} noise_rt_x_viper={cost['viper']:.4f}"
    )


if __name__ == "__main__":
    main()
