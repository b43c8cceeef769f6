"""`make bench-firmware`: the node firmware's memory, image size and CPU on MicroPython's unix port
built from source (tests/harness/mpbuild.py, `make deps`): 32-bit as the ESP32, with the code
in a ROMFS image or frozen into the interpreter.

- heap in use after boot (tests/mp/node_bench.py: Node built with its persisted config;
  gc.mem_alloc() after a collection, minus the interpreter's own), nothing but the node in the
  heap, with lamp and PIR and with every sensor (PM, climate, NO2, noise, PIR, radar), on the
  32-bit port from a ROMFS image and on the frozen build; and, with a simulated device behind
  each sensor (their heap left out, roughly), after boot and after 10,000 control cycles (100 ms
  each, presence every 20 s, the microphone's 32 blocks and the sensing step every second, a
  batch into the flash buffer every minute): flat when the two agree;
- the image: the 32-bit port with firmware/manifest.py frozen in (the node's modules, no
  simulator), the unix port's stand-in for the ESP32 image in an app slot; headroom against the
  app slot of firmware/partitions.csv (docs/firmware.md); and, for the ESP32, the node's .mpy
  (mpy-cross -march=xtensawin) and their ROMFS image;
- the noise pipeline (A-weighting, levels) as CPU time per second of audio at 24 kHz, plain
  Python and viper, on the 32-bit port (below 1 it keeps up with real time).

Last line: heap_boot_kb_32=<n> heap_full_kb_32=<n> heap_full_kb_frozen=<n>
heap_10k_cycles_kb_32=<n> image_kb=<n> partition_headroom_pct=<n> noise_rt_x_viper=<n>
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from fieldtools.build import MANIFEST
from fieldtools.unixport import FROZEN_HEAP_KIB, build_rom, interpreter_info
from simulator.mpnodes import MP_SENSORS
from tests.harness import mpbuild
from tests.harness.abnode import app_slot_bytes
from tests.harness.micropython import NODE_HEAP_KIB, run_micropython
from tests.harness.mpy import compile_tree
from tests.harness.paths import ROOT

NODE_BENCH = ROOT / "tests" / "mp" / "node_bench.py"
NOISE = ROOT / "tests" / "mp" / "noise_check.py"
BOARD = ROOT / "hardware" / "boards" / "sim.json"
LAMP_PIR = "pir"
EVERY_SENSOR = ",".join(MP_SENSORS)
CYCLES = 10_000


def _json_lines(out: str) -> list[dict[str, object]]:
    return [json.loads(x) for x in out.splitlines() if x.startswith("{")]


def node_bench(
    interpreter: str, rom: Path | None, heap_kib: int, sensors: str, cycles: int, work: Path
) -> dict[str, float]:
    """node_bench.py's figures (bytes, us) by name; exits with its output when it fails. With
    cycles, the sensors' simulated devices are fitted (the reports carry their readings); for
    the boot figures alone none is, so nothing but the node is in the heap."""
    work.mkdir(parents=True, exist_ok=True)
    bare = [] if cycles else ["bare"]
    proc = run_micropython(
        NODE_BENCH, str(BOARD), str(work), sensors, str(cycles), *bare, heap=f"{heap_kib}k",
        rom=rom, interpreter=interpreter, check=False, timeout=600,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(
            f"node bench failed ({sensors} in {heap_kib} KiB):\n{proc.stdout}{proc.stderr}"
        )
    found: dict[str, float] = {}
    for line in _json_lines(proc.stdout):
        found.update({k: float(v) for k, v in line.items() if isinstance(v, int | float)})
    return found


def kib(n: float) -> str:
    return f"{n / 1024:.1f}"


def main() -> None:
    unix32 = str(mpbuild.ensure_unix32())
    frozen32 = str(mpbuild.ensure_frozen())
    node_image = mpbuild.ensure_frozen(MANIFEST, "frozen32-node")
    march = interpreter_info(unix32).march
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        esp = compile_tree(t / "xtensawin", march="xtensawin", manifest=MANIFEST)
        esp_rom = build_rom(t / "xtensawin", t / "esp32.romfs")
        print(f"ESP32 (xtensawin): {len(esp)} modules, {kib(sum(esp.values()))} KiB of .mpy; "
              f"as a ROMFS image {kib(esp_rom.stat().st_size)} KiB")  # fmt: skip
        compile_tree(t / march, march=march)
        rom = build_rom(t / march, t / "node.romfs")

        runs = {
            "32 lamp+PIR": (unix32, rom, NODE_HEAP_KIB, LAMP_PIR, 0),
            "32 every sensor": (unix32, rom, NODE_HEAP_KIB, EVERY_SENSOR, 0),
            "32 every sensor, devices fitted": (unix32, rom, NODE_HEAP_KIB, EVERY_SENSOR, CYCLES),
            "frozen lamp+PIR": (frozen32, None, FROZEN_HEAP_KIB, LAMP_PIR, 0),
            "frozen every sensor": (frozen32, None, FROZEN_HEAP_KIB, EVERY_SENSOR, 0),
            # the devices are the bench's: in an ESP32's heap, not the frozen node's budget
            "frozen every sensor, devices fitted": (
                frozen32, None, NODE_HEAP_KIB, EVERY_SENSOR, CYCLES),
        }  # fmt: skip
        got = {}
        for name, (interp, image, heap, sensors, cycles) in runs.items():
            r = node_bench(interp, image, heap, sensors, cycles, t / name.replace(" ", "-")[:20])
            got[name] = r
            after = (f", after {CYCLES} cycles {kib(r['heap'])} KiB "
                     f"({r['us_per_cycle']:.1f} us per control step on this host)"
                     if cycles else "")  # fmt: skip
            devices = f"; the devices {kib(r['devices'])} KiB, not counted" if cycles else ""
            print(f"{name} in {heap} KiB: imports {kib(r['import'])} KiB, after boot "
                  f"{kib(r['boot'])} KiB{after}{devices}")  # fmt: skip

        image = node_image.stat().st_size
        slot = app_slot_bytes()
        headroom = 100 * (slot - image) / slot
        print(f"image: the 32-bit port with the node frozen in (firmware/manifest.py) "
              f"{kib(image)} KiB; app slot {kib(slot)} KiB, {headroom:.0f}% free")  # fmt: skip

        proc = run_micropython(NOISE, mpy_root=t / march, heap="96k", timeout=300,
                               interpreter=unix32)  # fmt: skip
        cost = next(x["cost"] for x in _json_lines(proc.stdout) if "cost" in x)
        assert isinstance(cost, dict)
        print(
            f"noise pipeline at 24 kHz: plain {cost['plain']:.4f} s, viper {cost['viper']:.4f} s"
            " of CPU per second of audio (32-bit unix port on this host, not an ESP32)"
        )

    print(
        f"heap_boot_kb_32={kib(got['32 lamp+PIR']['boot'])} "
        f"heap_full_kb_32={kib(got['32 every sensor']['boot'])} "
        f"heap_full_kb_frozen={kib(got['frozen every sensor']['boot'])} "
        f"heap_10k_cycles_kb_32={kib(got['32 every sensor, devices fitted']['heap'])} "
        f"image_kb={kib(image)} partition_headroom_pct={headroom:.0f} "
        f"noise_rt_x_viper={cost['viper']:.4f}"
    )


if __name__ == "__main__":
    main()
