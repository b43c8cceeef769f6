"""A node on A/B app slots, on the unix port: firmware images, the slots, and the bootloader.

On the ESP32 the bootloader picks the app slot to run (otadata) and the image in it is
MicroPython with the node firmware frozen in. Here an image is the 32-bit unix port built from
MicroPython's source with the firmware frozen in (``build_images``), the slots are files
(spnode.board.simota, sized as firmware/partitions.csv's app slots) and ``boot_command`` is the
bootloader: it picks the slot as ESP-IDF's does (simota.select_boot) and runs the binary in it.
A "reset" is the end of that process, for whatever reason: the next ``boot_command`` picks again.

Test images differ in their version and, for the bad ones, in one deliberate fault
(``VARIANTS``). They are built into ``build/ab/`` from ``MICROPYTHON_SRC`` (default
``../shared/micropython`` beside the repository, SOURCE.md there) and rebuilt only when the
firmware changes; the first build takes about a minute, each further variant a few seconds.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from spnode.board import simota

from .paths import FIRMWARE, PROTOCOLS, ROOT

PARTITIONS = FIRMWARE / "partitions.csv"
MICROPYTHON_SRC = Path(os.environ.get("MICROPYTHON_SRC", ROOT.parent / "shared" / "micropython"))
BUILD = ROOT / "build" / "ab"
HOST_ONLY = ("export_schemas.py", "checkgen.py")
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


def _firmware_digest() -> str:
    h = hashlib.sha256(repr(VARIANTS).encode())
    for base in (FIRMWARE / "spnode", PROTOCOLS):
        for p in sorted(base.rglob("*.py")):
            h.update(str(p.relative_to(ROOT)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def _make(mpsrc: Path, *args: str, log: Path) -> None:
    with log.open("a") as out:
        subprocess.run(["make", "-j2", *args], cwd=mpsrc, stdout=out, stderr=out, check=True)


def build_images() -> dict[str, Path]:
    """{variant: frozen 32-bit binary}, built once per firmware state (FileNotFoundError when
    there is no MicroPython source to build from)."""
    out = BUILD / _firmware_digest()
    images = {name: out / f"{name}.bin" for name in VARIANTS}
    if all(p.exists() for p in images.values()):
        return images
    if not (MICROPYTHON_SRC / "ports" / "unix").is_dir():
        raise FileNotFoundError(f"no MicroPython source at {MICROPYTHON_SRC} (MICROPYTHON_SRC)")
    mpsrc = BUILD / "mpsrc"
    if not mpsrc.exists():
        shutil.copytree(MICROPYTHON_SRC, mpsrc, symlinks=True)
        for d, _, files in os.walk(mpsrc):  # the source may be read-only; the build writes
            for name in (".", *files):
                p = Path(d, name)
                p.chmod(p.stat().st_mode | 0o200)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "build.log"
    _make(mpsrc / "mpy-cross", log=log)
    protocols = sorted(
        p.relative_to(PROTOCOLS).as_posix()
        for p in PROTOCOLS.rglob("*.py")
        if p.name not in HOST_ONLY and "vectors" not in p.parts
    )
    for name, (version, faults) in VARIANTS.items():
        src = out / f"src-{name}"
        shutil.rmtree(src, ignore_errors=True)
        shutil.copytree(FIRMWARE / "spnode", src / "spnode",
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
        init = src / "spnode" / "__init__.py"
        text = init.read_text()
        init.write_text(text.replace('VERSION = "', f'VERSION = "{version}"  # was "', 1))
        for rel, old, new in faults:
            f = src / rel
            body = f.read_text()
            assert old == "" or old in body, (rel, old)
            f.write_text(body + new if old == "" else body.replace(old, new))
        manifest = src / "manifest.py"
        manifest.write_text(
            'include("$(PORT_DIR)/variants/standard/manifest.py")\n'
            f'package("spnode", base_path="{src}")\n'
            f'package("protocols", files={protocols!r}, base_path="{ROOT}")\n'
        )
        _make(mpsrc / "ports" / "unix", "VARIANT=standard", "MICROPY_PY_FFI=0",
              "MICROPY_PY_BTREE=0", "CFLAGS_EXTRA=-m32", "LDFLAGS_EXTRA=-m32",
              "BUILD=build-ab32", f"FROZEN_MANIFEST={manifest}", "MPY_CROSS_FLAGS=-march=x86",
              log=log)  # fmt: skip
        shutil.copy(mpsrc / "ports" / "unix" / "build-ab32" / "micropython", images[name])
    return images
