"""The node carries on when its ticks wrap (2**30 ms: 12.4 days on an ESP32). The whole node,
on the 32-bit MicroPython build (whose own ticks wrap at 2**30, as the ESP32's: the node's
ticks_diff and asyncio's are the port's, not spnode.compat's shim) and on CPython, starts its
clock a minute before the wrap and runs across it against a real broker (tests/mp/node_wrap.py
has the pole's events); the drivers' own checks across the wrap, there and on the 64-bit port
(through the shim); CPython's ticks wrap as the node's; and no raw subtraction of ticks is left
in the firmware."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from controller.broker import Broker
from fieldtools.unixport import interpreter_info, pypi_binary
from protocols import topics
from spnode import compat
from spnode.compat import TICKS_PERIOD, ticks_add, ticks_diff
from tests.conftest import Trees
from tests.harness.micropython import micropython_env, node_command, run_micropython
from tests.harness.paths import FIRMWARE, ROOT
from tests.test_node_firmware import BOARD, CONFIG, KEY, Observer

SCRIPT = ROOT / "tests" / "mp" / "node_wrap.py"
DRIVERS = ROOT / "tests" / "mp" / "wrap_check.py"
SPEED = 20
BEFORE_S = 60  # node seconds from the start to the wrap
RUN_S = 150
WRAP_CONFIG: dict[str, Any] = dict(
    CONFIG,
    dimming=dict(
        CONFIG["dimming"],
        presence={"level": 1.0, "hold_s": 3, "ramp_up_s": 1, "ramp_down_s": 1,
                  "neighbour_level": 0.7},
    ),
)  # fmt: skip


def micropython(request: pytest.FixtureRequest, interpreter: str) -> str:
    """The binary for a parameter: the 32-bit build (skipped without MicroPython's source) or
    the 64-bit PyPI port."""
    if interpreter == "32-bit":
        unix32: str = request.getfixturevalue("unix32")
        assert interpreter_info(unix32).bits == 32
        return unix32
    return pypi_binary()


def command(
    request: pytest.FixtureRequest, interpreter: str, broker: Broker, pole: str
) -> tuple[list[str], Any]:
    args = [str(BOARD), broker.host, str(broker.port), pole, str(SPEED), KEY.hex(),
            str(TICKS_PERIOD - BEFORE_S * 1000), str(RUN_S)]  # fmt: skip
    if interpreter != "cpython":
        binary = micropython(request, interpreter)
        trees: Trees = request.getfixturevalue("mpy_trees")
        rom = trees.rom(interpreter_info(binary).march)
        cmd = node_command(SCRIPT, *args, heap="128k", rom=rom, interpreter=binary)
        return cmd, micropython_env(rom=True)
    env = dict(os.environ, PYTHONPATH=f"{FIRMWARE}{os.pathsep}{ROOT}")
    return [sys.executable, str(SCRIPT), *args], env


@pytest.mark.slow
@pytest.mark.parametrize("interpreter", ["32-bit", "cpython"])
def test_the_node_carries_on_across_the_ticks_wrap(
    interpreter: str, broker: Broker, request: pytest.FixtureRequest
) -> None:
    pole = f"W-{interpreter[:2]}-{broker.port}"
    obs = Observer(broker, pole)
    obs.publish(topics.CONFIG, WRAP_CONFIG, retain=True)
    cmd, env = command(request, interpreter, broker, pole)
    node = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # reports: every period before and after the wrap, none missing
        obs.wait("a batch after the wrap", lambda: len(obs.messages("meas")) >= 10, timeout=30)
        # neighbour wake after the wrap (this node's own walker came at wrap + 15 s)
        n_states = len(obs.messages(topics.STATE))
        nb = str(topics.Topic("P-nb", "n1", topics.PRESENCE))
        obs.c.publish(nb, b'{"ts": 1767225600, "src": "motion"}', qos=0)
        obs.wait("neighbour wake 0.7", lambda: obs.states(n_states, level=0.7), timeout=10)
        out, err = node.communicate(timeout=60)
    finally:
        if node.poll() is None:
            node.kill()
            out, err = node.communicate()
        obs.close()
    assert node.returncode == 0, err
    end = [x for x in out.splitlines() if x.startswith("{")][-1]
    final = json.loads(end)
    assert final["exit"] == "done", final
    assert final["ticks"] == ("port" if interpreter == "32-bit" else "shim"), final
    assert not obs.bad, obs.bad

    # reports carried on: one batch per 10 s period, the whole run, none lost
    seqs = sorted(b["seq"] for b in obs.messages("meas"))
    assert seqs == list(range(len(seqs))) and len(seqs) >= RUN_S // 10 - 2, seqs
    # uptime never fell back (the controller takes a fall for a reboot) and counts the run
    ups = [s["uptime_s"] for s in obs.states(status="online")]
    assert ups == sorted(ups) and ups[-1] > BEFORE_S, ups
    assert RUN_S - 2 <= final["uptime_s"] <= RUN_S + 2, final
    # state on level change after the wrap: the walker's light (a state may catch its 1 s ramp
    # part way at 20x speed on a busy machine: 0.968 seen), brighter than the neighbour's 0.7
    levels = [s["level"] for s in obs.states(status="online") if s["uptime_s"] > BEFORE_S]
    assert max(levels) > 0.7 and 0.7 in levels, levels
    # the walker after the wrap was announced to the neighbours, as the one before it
    assert len(obs.messages(topics.PRESENCE)) == 2, obs.messages(topics.PRESENCE)
    # the lamp broke after the wrap: its failure check still runs
    alarms = [e for e in obs.messages(topics.EVENT) if e.get("code") == "lampFailure"]
    assert alarms and alarms[0]["active"], obs.messages(topics.EVENT)
    # the PM sensor went silent a second before the wrap: its silence check spans it
    assert final["pm_fault"] and final["pm_fault"].startswith("no valid frame"), final


@pytest.mark.parametrize("interpreter", ["32-bit", "64-bit", "cpython"])
def test_driver_checks_across_the_ticks_wrap(
    interpreter: str, mpy_trees: Trees, request: pytest.FixtureRequest
) -> None:
    if interpreter != "cpython":
        binary = micropython(request, interpreter)
        tree = mpy_trees.tree(interpreter_info(binary).march)
        out = run_micropython(DRIVERS, mpy_root=tree, cwd=ROOT, interpreter=binary).stdout
    else:
        env = dict(os.environ, PYTHONPATH=f"{FIRMWARE}{os.pathsep}{ROOT}")
        proc = subprocess.run(
            [sys.executable, str(DRIVERS)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        out = proc.stdout
    lines = out.strip().splitlines()
    assert lines[-1] == "OK", out
    assert not [x for x in lines if x.startswith("FAIL")], out
    # the 32-bit port's own ticks wrap at 2**30 and the node uses them; elsewhere, the shim
    assert f"TICKS {'port' if interpreter == '32-bit' else 'shim'}" in lines, out


def test_cpython_ticks_wrap_as_the_node_s() -> None:
    try:
        compat.set_ticks_offset(TICKS_PERIOD - 1000 - compat.ticks_ms())
        before = compat.ticks_ms()
        assert TICKS_PERIOD - 1100 < before < TICKS_PERIOD
        later = ticks_add(before, 5000)
        assert later < before and ticks_diff(later, before) == 5000
        assert ticks_diff(before, later) == -5000
        assert ticks_add(TICKS_PERIOD - 1, 1) == 0 and ticks_add(0, -1) == TICKS_PERIOD - 1
        assert ticks_diff(2, TICKS_PERIOD - 3) == 5
    finally:
        compat.set_ticks_offset(0)


# ---- no raw subtraction of ticks in the firmware -------------------------------------------
# A name holds ticks when it is called ``ms``/``*_ms``/``ticks*``, ends in ``_at`` or ``_start``,
# is ``ref`` or ``_t``/``_t0``, or is a call of ``ticks_ms()``. Subtracting two of them, or
# one from anything, must go through ticks_diff. What is not ticks though named so is listed.
TICKS_NAME = re.compile(r"^(ms|now_ms|ref|_t|_t0|ticks.*|.*_ms|.*_at|.*_start)$")
NOT_TICKS = {
    ("spnode/clock.py", "sent_at"),  # time.time(): the NTP query's round trip in wall seconds
    ("spnode/sensing/pm.py", "_t0"),  # the PM warm-up in wall seconds
}


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Call):
        return _name(node.func)
    return None


def raw_ticks_subtractions(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = str(path.relative_to(root))
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub)):
                continue
            for side in (node.left, node.right):
                name = _name(side)
                if name and TICKS_NAME.match(name) and (rel, name) not in NOT_TICKS:
                    found.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
                    break
    return found


def test_no_raw_subtraction_of_ticks_in_the_firmware() -> None:
    assert raw_ticks_subtractions(FIRMWARE) == []


def test_the_check_finds_a_raw_subtraction(tmp_path: Path) -> None:
    (tmp_path / "x.py").write_text(
        "def f(self, ms):\n    return ms - self._rep_start < 10 or ticks_ms() - t > 1\n"
    )
    assert len(raw_ticks_subtractions(tmp_path)) == 2
    (tmp_path / "x.py").write_text("def f(self, ms):\n    return ticks_diff(ms, self._t) > 5\n")
    assert raw_ticks_subtractions(tmp_path) == []
