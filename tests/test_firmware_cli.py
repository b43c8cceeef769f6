"""`streetpole firmware ...` against a running controller: build the SPA1 archive, upload it,
start a campaign on a group or on a list of poles, follow it and halt it (issue #22: nothing
in the CLI started a campaign, and no documented command built the archive)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from controller.app import create_app
from controller.registry.accounts import create_token, create_user
from controller.registry.db import Registry
from controller.registry.models import Node
from controller.settings import Settings
from spnode.update import Unpacker, pack
from streetpole.cli import app
from tests.harness.server import serve

QUIET = {"ingest_enabled": False, "dispatch_enabled": False}


@pytest.fixture(scope="module")
def controller(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A controller with three provisioned poles and an admin token: (url, token)."""
    data = tmp_path_factory.mktemp("fwcli")
    url = f"sqlite:///{data / 'registry.db'}"
    Registry(url).close()
    reg = Registry(url, run_migrations=False)
    create_user(reg, "admin", "correct horse battery", "admin")
    token = create_token(reg, "admin", "t")
    app_ = create_app(Settings(data_dir=data, database_url=url, _env_file=None, **QUIET))
    with serve(app_) as base:
        h = {"Authorization": f"Bearer {token}"}
        owner = httpx.post(f"{base}/api/owners", json={"slug": "c", "name": "C"}, headers=h)
        for pid in ("P1", "P2", "P3"):
            body = {"id": pid, "lat": 51.9, "lon": 4.48, "owner_id": owner.json()["id"]}
            assert httpx.post(f"{base}/api/poles", json=body, headers=h).status_code == 201
        with reg.session() as db:
            for pid in ("P1", "P2", "P3"):
                db.add(Node(pole_id=pid, node="n1", mqtt_username=f"{pid}/n1", update_key="0" * 64))
        httpx.post(f"{base}/api/groups", json={"name": "west", "poles": ["P1", "P2"]}, headers=h)
        reg.close()
        yield base, token


def _run(controller: tuple[str, str], *args: str) -> str:
    url, token = controller
    r = CliRunner().invoke(
        app,
        list(args),
        env={"STREETPOLE_API_URL": url, "STREETPOLE_TOKEN": token, "COLUMNS": "200"},
    )
    assert r.exit_code == 0, f"streetpole {' '.join(args)}:\n{r.output}"
    return r.output


@pytest.mark.slow  # compiles the whole application with mpy-cross
def test_archive_builds_the_application_as_a_node_unpacks_it(
    controller: tuple[str, str], tmp_path: Path
) -> None:
    spa = tmp_path / "fw.spa"
    out = _run(controller, "firmware", "archive", "--out", str(spa))
    assert out.startswith(f"{spa}  version ")
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    u = Unpacker(str(unpacked))
    u.feed(spa.read_bytes())
    u.close()
    # app/spnode/... on the node's flash, so spnode/... in the archive
    assert (unpacked / "spnode" / "app.mpy").is_file() and not (unpacked / "app").exists()


def test_upload_and_a_campaign_started_followed_and_halted(
    controller: tuple[str, str], tmp_path: Path
) -> None:
    spa = tmp_path / "streetpole-0.2.0.spa"
    spa.write_bytes(pack([("spnode/__init__.py", b"VERSION = '0.2.0'\n")]))
    out = _run(controller, "firmware", "upload", str(spa))  # the version from the file's name
    assert out.startswith("package ") and "0.2.0 (tree," in out
    assert "0.2.0" in _run(controller, "firmware", "list")

    out = _run(
        controller, "firmware", "campaign", "start", "--package", "0.2.0", "--group", "west",
        "--batch", "1",
    )  # fmt: skip
    assert out.startswith("campaign 1: running; pending 2")  # P1 and P2, not P3
    status = _run(controller, "firmware", "campaign", "status", "1")
    assert status.count("  node ") == 2  # P1 and P2, not P3
    assert _run(controller, "firmware", "campaign", "halt", "1").startswith("campaign 1: halted")

    out = _run(
        controller, "firmware", "campaign", "start", "--package", "0.2.0", "--poles", "P3",
    )  # fmt: skip
    assert "made with 1 poles" in out and "campaign 2: running" in out
    assert "campaign 1: halted" in _run(controller, "firmware", "campaign", "status")


def test_refusals_are_one_line_with_the_reason(controller: tuple[str, str], tmp_path: Path) -> None:
    url, token = controller
    env = {"STREETPOLE_API_URL": url, "STREETPOLE_TOKEN": token, "COLUMNS": "200"}
    bad = tmp_path / "streetpole-0.3.0.spa"
    bad.write_bytes(b"not an archive")
    r = CliRunner().invoke(app, ["firmware", "upload", str(bad)], env=env)
    assert r.exit_code == 1 and r.output.startswith("refused (422): file:")
    r = CliRunner().invoke(app, ["firmware", "campaign", "halt", "99"], env=env)
    assert r.exit_code == 1 and "refused (404)" in r.output
    r = CliRunner().invoke(
        app, ["firmware", "campaign", "start", "--package", "9.9.9", "--group", "west"], env=env
    )
    assert r.exit_code == 2 and "no package '9.9.9'" in r.output
