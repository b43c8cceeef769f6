"""firmware/manifest.py says what a node carries: `streetpole node deploy` sends exactly that (no
simulator module, no host tool), every firmware module is in it or in the simulated board's
manifest, the host's reading of it agrees with MicroPython's own, and the frozen build runs the
node's modules from flash."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

from fieldtools import build as fw
from tests.harness import mpbuild
from tests.harness.mpy import TEST_MANIFEST

SIM_ONLY = {"spnode/board/sim.py", "spnode/board/simbus.py", "spnode/board/simota.py"}


def is_sim(path: str) -> bool:
    return path.startswith("spnode/sim/") or path in SIM_ONLY


def test_the_deploy_to_an_esp32_carries_no_simulator_and_no_host_tool(tmp_path: Path) -> None:
    b = fw.build(tmp_path, "streetpole-esp32-v1")
    app = {p.removeprefix("app/").removesuffix(".mpy") + ".py" for p in b.app_files}
    assert "spnode/app.py" in app and "protocols/incoming.py" in app
    assert "spnode/noise/_viper.py" in app and "protocols/nodecheck/config.py" in app
    assert [p for p in app if is_sim(p)] == []
    host = {"protocols/codec.py", "protocols/checkgen.py", "protocols/export_schemas.py",
            "protocols/schema_defs.py", "protocols/validate.py",
            "protocols/quantity_info.py"}  # fmt: skip
    assert app & host == set()
    assert set(b.files) - set(b.app_files) == {"main.py", "boot.py", "board.json"}
    assert app == set(fw.manifest_files())


def test_a_virtual_node_gets_the_simulated_board_too(tmp_path: Path) -> None:
    b = fw.build(tmp_path, "sim")
    app = {p.removeprefix("app/").removesuffix(".mpy") + ".py" for p in b.app_files}
    assert app == set(fw.manifest_files(fw.SIM_MANIFEST))
    assert {p for p in app if is_sim(p)} == SIM_ONLY | {
        "spnode/sim/__init__.py", "spnode/sim/audio.py", "spnode/sim/devices.py",
        "spnode/sim/fitted.py", "spnode/sim/lamp.py"}  # fmt: skip


def test_every_firmware_module_is_in_a_manifest() -> None:
    node = set(fw.manifest_files())
    sim = set(fw.manifest_files(fw.SIM_MANIFEST)) - node
    spnode = {p.relative_to(fw.FIRMWARE).as_posix() for p in (fw.FIRMWARE / "spnode").rglob("*.py")}
    assert spnode - node - sim == set(), "add new modules to firmware/manifest.py"
    assert {p for p in sim if not is_sim(p)} == set()
    assert {p for p in node if is_sim(p)} == set()


def test_a_manifest_naming_a_missing_module_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "manifest.py").write_text('package("spnode", files=["gone.py"])\n')
    with pytest.raises(fw.FieldError, match="no module"):
        fw.manifest_files(tmp_path / "manifest.py")


def test_the_host_reads_the_manifests_as_micropython_does() -> None:
    try:
        src = mpbuild.source_dir()
    except mpbuild.Unavailable as e:
        pytest.skip(str(e))
    spec = importlib.util.spec_from_file_location("manifestfile", src / "tools/manifestfile.py")
    assert spec is not None and spec.loader is not None
    manifestfile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(manifestfile)
    for manifest in (fw.MANIFEST, fw.SIM_MANIFEST, TEST_MANIFEST):
        m = manifestfile.ManifestFile(manifestfile.MODE_COMPILE, {"MPY_DIR": str(src)})
        m.execute(str(manifest))
        theirs = {f.target_path: Path(f.full_path).resolve() for f in m.files()}
        ours = {t: s.resolve() for t, s in fw.manifest_files(manifest).items()}
        assert theirs == ours, manifest


def test_the_frozen_build_runs_the_node_from_flash(frozen32: str, tmp_path: Path) -> None:
    """Nothing on the path but the frozen modules (and no spnode/ in the folder): the node's code
    and its simulated board are found there, compiled for the 32-bit port's native code."""
    code = (
        "import spnode.app, spnode.board.sim, spnode.noise.kernel\n"
        "print(spnode.app.__file__, spnode.noise.kernel.__file__)\n"
    )
    proc = subprocess.run(
        [frozen32, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env=dict(os.environ, MICROPYPATH=".frozen"),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["spnode/app.py", "spnode/noise/kernel.py"]  # as frozen
