"""A node on A/B app slots, on the unix port: firmware images, the slots, and the bootloader.

On the ESP32 the bootloader picks the app slot to run (otadata) and the image in it is
MicroPython with the node firmware frozen in. Here an image is the 32-bit unix port built from
MicroPython's source with the firmware frozen in (``build_images``), the slots are files
(spnode.board.simota, sized as firmware/partitions.csv's app slots) and ``boot_command`` is the
bootloader: it picks the slot as ESP-IDF's does (simota.select_boot) and runs the binary in it.
A "reset" is the end of that process, for whatever reason: the next ``boot_command`` picks again.

Test images differ in their version and, for the bad ones, in one deliberate fault
(``VARIANTS``). tests/harness/mpbuild.py builds them from ``MICROPYTHON_SRC`` (their firmware
trees under ``build/ab/``), and again only when the firmware changes; the first build takes
about a minute, each further variant a few seconds.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from fieldtools.build import SIM_MANIFEST, manifest_files
from spnode.board import simota

from . import mpbuild
from .paths import FIRMWARE, ROOT

PARTITIONS = FIRMWARE / "partitions.csv"
BUILD = ROOT / "build" / "ab"
# name: (version, [(file in the firmware tree, text, replacement)]); "" as text appends
VARIANTS: dict[str, tuple[str, list[tuple[str, str, str]]]] = {
    "A": ("0.1.0", []),
    "B": ("0.2.0", []),
    # crashes at start, before it could mark itself valid: the bootloader goes back
    "crash": ("0.3.0", [("spnode/__init__.py", "", "raise RuntimeError('a bad image')\n")]),
    # runs, but never reaches its broker: not healthy within its probation, it goes back
    "offline": ("0.3.1", [("spnode/mqtt_client.py", "(self.host, self.port)", "(self.host, 1)")]),
}


def app_slot_bytes() -> int:
    """The size of an app slot (ota_0) in firmware/partitions.csv."""
    for line in PARTITIONS.read_text().splitlines():
        cells = [c.strip() for c in line.split(",")]
        if not line.startswith("#") and len(cells) >= 5 and cells[0] == "ota_0":
            return int(cells[4], 0)
    raise ValueError(f"{PARTITIONS}: no ota_0 slot")


def flash_slots(ota_dir: Path, image: bytes) -> None:
    """A node as flashed: ``image`` in ota_0, an empty ota_1, ota_0 set to boot."""
    ota_dir.mkdir(parents=True, exist_ok=True)
    size = app_slot_bytes()
    assert len(image) <= size, (len(image), size)
    for label in simota.SLOTS:
        with (ota_dir / label).open("wb") as f:
            f.truncate(size)  # sparse: erased flash reads as 0xff, zeros do as well here
    with (ota_dir / simota.SLOTS[0]).open("r+b") as f:
        f.write(image)
    simota.write_otadata(str(ota_dir), {"boot": "ota_0", "state": "valid", "running": "ota_0"})


def boot_command(ota_dir: Path, script: Path, *args: str, heap_kib: int) -> list[str]:
    """The bootloader: the slot to run now (otadata updated), as a command line."""
    slot = ota_dir / simota.select_boot(str(ota_dir))
    slot.chmod(0o755)  # an ELF with the rest of the slot after it runs as it is
    return [str(slot), "-X", f"heapsize={heap_kib * 1024}", str(script), *args]


def build_images() -> dict[str, Path]:
    """{variant: frozen 32-bit binary}: each variant's firmware tree (the node's files as
    firmware/manifest_sim.py lists them, with its version and fault) frozen by mpbuild into
    build/micropython/ab-<variant>, rebuilt only when the firmware changes; raises
    mpbuild.Unavailable without MicroPython's source. The variants share one build folder."""
    files = manifest_files(SIM_MANIFEST)
    images = {}
    # the variants' trees have a lock of their own: mpbuild takes its own inside ensure_frozen
    with mpbuild.file_lock(BUILD):
        for name, (version, faults) in VARIANTS.items():
            images[name] = _build_variant(files, name, version, faults)
    return images


def _build_variant(
    files: dict[str, Path], name: str, version: str, faults: list[tuple[str, str, str]]
) -> Path:
    tree = BUILD / f"src-{name}"  # firmware/ and protocols/ as the manifests list them
    shutil.rmtree(tree, ignore_errors=True)
    for rel, src in files.items():
        dest = tree / ("firmware" if rel.startswith("spnode/") else "") / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dest)
    for m in FIRMWARE.glob("manifest*.py"):
        shutil.copy(m, tree / "firmware" / m.name)
    init = tree / "firmware" / "spnode" / "__init__.py"
    text = init.read_text()
    init.write_text(text.replace('VERSION = "', f'VERSION = "{version}"  # was "', 1))
    for rel, old, new in faults:
        f = tree / "firmware" / rel
        body = f.read_text()
        assert old == "" or old in body, (rel, old)
        f.write_text(body + new if old == "" else body.replace(old, new))
    return mpbuild.ensure_frozen(
        tree / "firmware" / SIM_MANIFEST.name, f"ab-{name}", build_dir="build-ab32"
    )
