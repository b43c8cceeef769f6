"""The Makefile people read with `make help`: every target they can name (.PHONY) is listed,
and `make sim` talks to the ports `make run` uses."""

from __future__ import annotations

import os
import re
import subprocess

from tests.harness.paths import ROOT


def make(*args: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=True,
    )
    return out.stdout


def test_help_lists_every_phony_target() -> None:
    text = (ROOT / "Makefile").read_text()
    phony = {t for line in re.findall(r"^\.PHONY:(.*)$", text, re.M) for t in line.split()}
    listed = dict(re.findall(r"^make (\S+)\s+(.+)$", make("help"), re.M))
    assert phony - listed.keys() == set(), "targets without a `## ` help line"
    assert {"sim", "format", "lock", "bench-ingest", "test-fast", "assets"} <= listed.keys()
    assert all(len(line) <= 110 for line in make("help").splitlines()), "wraps at 110"


def test_sim_uses_make_runs_ports() -> None:
    def dry(**env: str) -> str:
        # -n: the commands only; -o venv: as if the venv were made (nothing runs either way)
        return make("-n", "-o", "venv", "sim", env={**os.environ, **env})

    default = dry()
    assert "--broker mqtts://127.0.0.1:8883" in default
    assert "--api http://127.0.0.1:$" in default or "127.0.0.1:8000" in default
    assert "--prefix DEV-" in default and "--layout grid" in default
    assert "--broker mqtts://127.0.0.1:9883" in dry(MQTTS_PORT="9883")
    assert "--broker mqtt://127.0.0.1:2883" in dry(MQTT_TLS="0", MQTT_PORT="2883")
