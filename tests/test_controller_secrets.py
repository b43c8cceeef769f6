"""Secrets at rest and in sight (issue 19, item 7): the data folder is the controller's alone,
the simulator's token is not on its command line, /metrics is not public."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

import simulator.__main__ as sim_cli
from tests.harness.api import running_api
from tests.harness.paths import ROOT

QUIET = {"ingest_enabled": False, "dispatch_enabled": False}


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_the_data_folder_and_its_files_are_private_after_start(tmp_path: Path) -> None:
    data = tmp_path / "var"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    (data / "old.db").write_text("x")
    (data / "old.db").chmod(0o644)
    with running_api(data, **QUIET):
        pass
    assert mode(data) == 0o700
    for f in [data / "old.db", data / "registry.db", data / "streetpole.db", data / "ops.db"]:
        assert mode(f) & 0o077 == 0, f"{f.name}: {mode(f):o}"


@pytest.mark.slow
def test_a_served_controller_makes_private_files(tmp_path: Path) -> None:
    """`streetpole serve` runs with umask 077: what it creates later is private too."""
    code = (
        "import os, controller.cli as c, uvicorn\n"
        "uvicorn.Server.run = lambda *a, **k: open(os.environ['PROBE'], 'w').close()\n"
        "c.serve(host='127.0.0.1', port=1)\n"
    )
    probe = tmp_path / "probe"
    env = dict(os.environ, PROBE=str(probe), STREETPOLE_DATA_DIR=str(tmp_path / "var"))
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)
    assert mode(probe) & 0o077 == 0, f"{mode(probe):o}"


def test_the_simulator_takes_its_token_from_the_environment_or_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit):
        sim_cli.parse(["--token", "spt_secret"])  # no such option: it would show in ps
    monkeypatch.setenv("STREETPOLE_TOKEN", "spt_from_env")
    assert sim_cli.api_token(None) == "spt_from_env"
    f = tmp_path / "token"
    f.write_text("spt_from_file\n")
    assert sim_cli.api_token(sim_cli.parse(["--token-file", str(f)]).token_file) == "spt_from_file"
    devstack = (ROOT / "controller" / "devstack.py").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert '"--token"' not in devstack and "--token $$TOKEN" not in makefile


def test_metrics_need_the_token_or_loopback(tmp_path: Path) -> None:
    with running_api(tmp_path, **QUIET) as api:
        r = api.client.get("/metrics")  # the test client is not on loopback
        assert r.status_code == 403 and "STREETPOLE_METRICS_TOKEN" in r.json()["detail"]
    with running_api(tmp_path, metrics_token=SecretStr("m-secret"), **QUIET) as api:
        assert api.client.get("/metrics").status_code == 401
        bad = api.client.get("/metrics", headers={"Authorization": "Bearer wrong"})
        assert bad.status_code == 401
        ok = api.client.get("/metrics", headers={"Authorization": "Bearer m-secret"})
        assert ok.status_code == 200 and "streetpole" in ok.text
