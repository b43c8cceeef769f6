"""Build MicroPython from source: mpy-cross, the 32-bit unix port and that port with a manifest
frozen in (the node's firmware by default), cached under build/micropython.

    python -m tests.harness.mpbuild          # what `make deps` runs; prints where they are

The source comes from ``MICROPYTHON_SRC`` (default ``../shared/micropython`` beside the
checkout; any MicroPython clone at the commit in its SOURCE.md), is copied to
build/micropython/src and built there, never in place. Each binary keeps a stamp: the hash of
the source, of the build flags and, for a frozen build, of every file its manifest lists; it is
rebuilt only when one of them changes (make then recompiles only what changed). Without the
source, ``Unavailable`` says why and the 32-bit tests are skipped with that reason.

Written here rather than taken from a library: MicroPython builds with its own Makefiles, and
what this adds (copy, stamps, the frozen manifest) is a few lines of glue around them.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from fieldtools.build import SIM_MANIFEST, manifest_files
from fieldtools.unixport import BUILT, FROZEN32, UNIX32

from .paths import ROOT

SRC_SETTING = "MICROPYTHON_SRC"
DEFAULT_SRC = ROOT.parent / "shared" / "micropython"
SRC = BUILT / "src"
MPY_CROSS = BUILT / "mpy-cross" / "mpy-cross"
# The standard variant as the node needs it: no FFI or btree (the ESP32 has neither), mbedTLS
# on (the variant's default), 32-bit words as the ESP32's.
UNIX_FLAGS = ("VARIANT=standard", "MICROPY_PY_FFI=0", "MICROPY_PY_BTREE=0",
              "CFLAGS_EXTRA=-m32", "LDFLAGS_EXTRA=-m32")  # fmt: skip
FROZEN_MARCH = "x86"  # native code (viper) in the frozen modules, for the 32-bit port
JOBS = str(os.cpu_count() or 2)


class Unavailable(Exception):
    """The interpreters cannot be built here; the message says why."""


def source_dir() -> Path:
    """Where MicroPython's source is, checked; raises Unavailable."""
    src = Path(os.environ.get(SRC_SETTING) or DEFAULT_SRC)
    if not (src / "py" / "mpconfig.h").is_file() or not (src / "ports" / "unix").is_dir():
        raise Unavailable(
            f"no MicroPython source at {src} (set {SRC_SETTING} to a MicroPython clone at the"
            " commit in ../shared/micropython/SOURCE.md)"
        )
    return src


def _hash_files(files: Iterator[tuple[str, Path]]) -> str:
    h = hashlib.sha256()
    for name, path in sorted(files):
        h.update(f"{name}\0{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    return h.hexdigest()


def source_hash(src: Path) -> str:
    return _hash_files(
        (p.relative_to(src).as_posix(), p)
        for p in src.rglob("*")
        if p.is_file() and not p.is_symlink()
    )


def firmware_hash(manifest: Path) -> str:
    """What a frozen build depends on: every module the manifest lists, and the manifests."""
    files = {rel: src for rel, src in manifest_files(manifest).items()}
    for m in manifest.parent.glob("manifest*.py"):
        files["manifest:" + m.name] = m
    return _hash_files(iter(files.items()))


@contextmanager
def file_lock(folder: Path) -> Iterator[None]:
    """One writer of ``folder`` at a time (two pytest workers or runs), by a lock file in it.
    Not re-entrant: a second lock on the same folder in one process waits for ever."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _locked() -> AbstractContextManager[None]:
    """One build at a time in this checkout."""
    return file_lock(BUILT)


def _stamp_ok(binary: Path, stamp: dict[str, str]) -> bool:
    path = binary.parent / "stamp.json"
    return binary.is_file() and path.is_file() and json.loads(path.read_text()) == stamp


def _install(built: Path, binary: Path, stamp: dict[str, str]) -> Path:
    binary.parent.mkdir(parents=True, exist_ok=True)
    part = binary.with_suffix(".part")
    shutil.copy2(built, part)
    os.replace(part, binary)  # a process still running the old one keeps it
    (binary.parent / "stamp.json").write_text(json.dumps(stamp, indent=1) + "\n")
    return binary


def _make(directory: Path, *args: str, log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        proc = subprocess.run(
            ["make", "-C", str(directory), f"-j{JOBS}", *args], stdout=out, stderr=subprocess.STDOUT
        )
    if proc.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        hint = " (is gcc-multilib installed? `make apt`)" if "-m32" in " ".join(args) else ""
        raise RuntimeError(f"make {' '.join(args)} failed{hint}; {log}:\n{tail}")


_hashed: dict[Path, str] = {}  # the source's hash, once per process


def _source() -> str:
    """The source copied to build/micropython/src when it changed; its hash."""
    src = source_dir()
    digest = _hashed.get(src) or _hashed.setdefault(src, source_hash(src))
    stamp = SRC.parent / "src.stamp"
    if not (SRC.is_dir() and stamp.is_file() and stamp.read_text() == digest):
        shutil.rmtree(SRC, ignore_errors=True)
        shutil.copytree(src, SRC, symlinks=True)
        stamp.write_text(digest)
    return digest


def ensure_mpy_cross() -> Path:
    """mpy-cross built from the source (the frozen builds use it)."""
    with _locked():
        stamp = {"source": _source()}
        if not _stamp_ok(MPY_CROSS, stamp):
            _make(SRC / "mpy-cross", log=BUILT / "logs" / "mpy-cross.log")
            _install(SRC / "mpy-cross" / "build" / "mpy-cross", MPY_CROSS, stamp)
        return MPY_CROSS


def ensure_unix32() -> Path:
    """The 32-bit unix port (standard variant, FFI and btree off, mbedTLS on)."""
    ensure_mpy_cross()
    with _locked():
        stamp = {"source": _source(), "flags": " ".join(UNIX_FLAGS)}
        if not _stamp_ok(UNIX32, stamp):
            args = (*UNIX_FLAGS, "BUILD=build-unix32")
            _make(SRC / "ports" / "unix", *args, log=BUILT / "logs" / "unix32.log")
            _install(SRC / "ports" / "unix" / "build-unix32" / "micropython", UNIX32, stamp)
        return UNIX32


def ensure_frozen(
    manifest: Path = SIM_MANIFEST, name: str = "frozen32", build_dir: str | None = None
) -> Path:
    """The 32-bit port with ``manifest`` frozen in (after the standard variant's own manifest:
    asyncio, ssl), as build/micropython/<name>/micropython. The default is the node with its
    simulated board (what the tests and the simulator run); another name builds another image
    beside it (two different firmwares, say), each with its own stamp and, unless ``build_dir``
    names one they share (variants of one firmware: each after the first relinks in seconds),
    its own build folder."""
    ensure_mpy_cross()
    binary = BUILT / name / "micropython"
    manifest = manifest.resolve()
    with _locked():
        stamp = {"source": _source(), "flags": " ".join(UNIX_FLAGS), "manifest": str(manifest),
                 "firmware": firmware_hash(manifest)}  # fmt: skip
        if not _stamp_ok(binary, stamp):
            top = BUILT / name / "manifest.py"
            top.parent.mkdir(parents=True, exist_ok=True)
            top.write_text(
                'include("$(PORT_DIR)/variants/standard/manifest.py")\n'
                f"include({str(manifest)!r})\n"
            )
            build = SRC / "ports" / "unix" / (build_dir or f"build-{name}")
            # Freeze afresh: make's own check is by file time, which a branch switch can fool.
            shutil.rmtree(build / "frozen_mpy", ignore_errors=True)
            (build / "frozen_content.c").unlink(missing_ok=True)
            args = (*UNIX_FLAGS, f"BUILD={build.name}", f"FROZEN_MANIFEST={top}",
                    f"MPY_CROSS_FLAGS=-march={FROZEN_MARCH}")  # fmt: skip
            _make(SRC / "ports" / "unix", *args, log=BUILT / "logs" / f"{name}.log")
            _install(build / "micropython", binary, stamp)
        return binary


def main() -> int:
    try:
        unix32 = ensure_unix32()
        frozen = ensure_frozen()
    except Unavailable as e:
        print(f"MicroPython not built: {e}; the 32-bit tests will be skipped")
        return 0
    print(f"MicroPython: mpy-cross {MPY_CROSS}, 32-bit {unix32}, frozen {frozen}")
    assert frozen == FROZEN32
    return 0


if __name__ == "__main__":
    sys.exit(main())
