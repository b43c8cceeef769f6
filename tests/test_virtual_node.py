"""The virtual node answers mpremote like a node on a serial cable."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fieldtools.virtual_node import VirtualNode
from tests.harness.paths import venv_tool


def mpremote(node: VirtualNode, *args: str) -> str:
    proc = subprocess.run(
        [venv_tool("mpremote"), "connect", str(node.tty), "resume", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.slow
def test_mpremote_exec_copy_and_run_on_virtual_node(tmp_path: Path) -> None:
    script = tmp_path / "hello.py"
    script.write_text("import gc\nprint('free', gc.mem_free())\n")
    with VirtualNode(tmp_path / "flash") as node:
        out = mpremote(node, "exec", "import sys; print(sys.implementation.name)")
        assert out.strip() == "micropython"
        mpremote(node, "fs", "cp", str(script), ":hello.py")
        assert (tmp_path / "flash" / "hello.py").read_text() == script.read_text()
        out = mpremote(node, "exec", "import hello")
        free = int(out.split()[-1])
        assert 40_000 < free < 96 * 1024  # an ESP32-sized heap, not the host's
