"""The account commands of docs/operator.md ("First start") run as written on a fresh
install: before, the owner-scoped example failed with "no owner with slug 'airco'". The
commands run in this process through typer's test runner (the same `streetpole` app the console
script calls, without an interpreter start per command)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from typer.testing import CliRunner

from controller.registry.db import Registry
from controller.registry.models import Owner, User
from streetpole.cli import app
from tests.harness.paths import ROOT


def _first_start_commands() -> list[list[str]]:
    text = (ROOT / "docs" / "operator.md").read_text()
    block = re.search(r"## First start\n\n```sh\n(.*?)```", text, re.S)
    assert block, "docs/operator.md has no First start block"
    out = []
    for line in block.group(1).splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == ".venv/bin/streetpole":
            out.append(words[1:])
    return out


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        "STREETPOLE_DATA_DIR": str(tmp_path),
        "STREETPOLE_DATABASE_URL": f"sqlite:///{tmp_path / 'registry.db'}",
        "COLUMNS": "200",  # typer's error box would wrap the message
    }


def test_the_documented_account_commands_work_on_a_fresh_install(tmp_path: Path) -> None:
    commands = _first_start_commands()
    assert ["create-user", "airco", "--role", "operator", "--owner", "airco"] in commands
    runner = CliRunner()
    outputs = []
    for args in commands:
        r = runner.invoke(app, args, env=_env(tmp_path))
        assert r.exit_code == 0, f"streetpole {shlex.join(args)}:\n{r.output}"
        outputs.append(r.output)
    assert any(o.startswith("account airco (operator) password: ") for o in outputs)
    # what they made is what the docs say: airco's account is scoped to the owner airco
    reg = Registry(_env(tmp_path)["STREETPOLE_DATABASE_URL"])
    try:
        with reg.session() as db:
            airco = db.query(User).filter_by(username="airco").one()
            owner = db.get(Owner, airco.owner_id)
            assert owner is not None and (owner.slug, owner.name) == ("airco", "Airco BV")
    finally:
        reg.close()


def test_an_unknown_owner_says_how_to_add_it(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["create-user", "x", "--owner", "nobody"], env=_env(tmp_path))
    assert r.exit_code == 2 and "streetpole create-owner nobody" in r.output


def test_an_owner_twice_or_a_bad_slug_is_refused(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["create-owner", "airco"], env=_env(tmp_path)).exit_code == 0
    again = runner.invoke(app, ["create-owner", "airco"], env=_env(tmp_path))
    assert again.exit_code == 2 and "exists already" in again.output
    bad = runner.invoke(app, ["create-owner", "Air Co!"], env=_env(tmp_path))
    assert bad.exit_code == 2 and "slug" in bad.output


def test_create_user_again_resets_the_password_and_keeps_role_and_owner(tmp_path: Path) -> None:
    """`make run` says `streetpole create-user admin` gives the admin a new password: it must
    not turn the admin into a viewer, nor widen an owner-scoped account to the whole city."""
    runner = CliRunner()
    for args in (
        ["create-user", "admin", "--role", "admin", "--password", "first-password"],
        ["create-owner", "airco"],
        ["create-user", "airco", "--role", "operator", "--owner", "airco"],
        ["create-user", "admin"],
        ["create-user", "airco"],
    ):
        r = runner.invoke(app, args, env=_env(tmp_path))
        assert r.exit_code == 0, r.output
    assert r.output.startswith("account airco (operator) password: ")
    reg = Registry(_env(tmp_path)["STREETPOLE_DATABASE_URL"])
    try:
        with reg.session() as db:
            admin = db.query(User).filter_by(username="admin").one()
            airco = db.query(User).filter_by(username="airco").one()
            assert (admin.role, admin.owner_id) == ("admin", None)
            owner = db.get(Owner, airco.owner_id)
            assert airco.role == "operator" and owner is not None and owner.slug == "airco"
    finally:
        reg.close()
