"""Compile the node's modules with mpy-cross, as deployed (for the ESP32: xtensawin).

`python -m tests.harness.mpy OUTDIR` writes the .mpy tree; tests call `compile_tree`. What is
compiled is a MicroPython manifest: the tests' (tests/mp/manifest.py: the node, its simulated
board and the codec the test scripts use) unless told otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

from controller.fieldtools.build import APP, KEEP_SOURCE, build, manifest_files

from .paths import ROOT

__all__ = ["KEEP_SOURCE", "TEST_MANIFEST", "compile_tree", "firmware_sources"]

TEST_MANIFEST = ROOT / "tests" / "mp" / "manifest.py"


def firmware_sources(manifest: Path = TEST_MANIFEST) -> list[tuple[Path, Path]]:
    """(source file, path on the node's flash) for every module the manifest lists."""
    return [(src, Path(rel)) for rel, src in sorted(manifest_files(manifest).items())]


def compile_tree(
    outdir: Path, march: str = "xtensawin", manifest: Path = TEST_MANIFEST
) -> dict[Path, int]:
    """Compile the manifest's modules as `streetpole node deploy` does
    (controller/fieldtools/build.py) into ``outdir``; return {source path on the node's flash:
    .mpy size}. Raises on the first error."""
    b = build(outdir, "sim", arch=march, manifest=manifest)
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
