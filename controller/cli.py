"""The controller's commands: run it and do the operator chores headless. Settings come from
STREETPOLE_* variables, as for `serve`. Part of the `streetpole` command (streetpole/cli.py) and
alone as `python -m controller` (how the controller starts its ingest children).

Only typer is imported here: each command imports what it runs, so `streetpole node ...` on a
technician's laptop never loads FastAPI or SQLAlchemy."""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from controller.registry.db import Registry

app = typer.Typer(
    help="Streetpole controller",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rich's boxes cut defaults at 80 columns
)


@contextmanager
def _registry() -> Iterator[Registry]:
    """The registry for one command; a database that cannot answer (locked, full, read-only,
    corrupt) is one line saying so and exit status 1, not a traceback."""
    from sqlalchemy.exc import DatabaseError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from controller.registry.db import Registry, RegistryBusy, error_reason
    from controller.settings import Settings

    try:
        reg = Registry(Settings().registry_url)
        try:
            yield reg
        finally:
            reg.close()
    except (DatabaseError, PoolTimeout, RegistryBusy, sqlite3.Error) as e:
        typer.echo(f"streetpole: registry unavailable: {error_reason(e)}; try again", err=True)
        raise typer.Exit(1) from None


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(int(os.environ.get("PORT", "8000")), help="HTTP port (env PORT)"),
) -> None:
    """Run the controller: HTTP APIs and MQTT ingest (settings from STREETPOLE_* variables)."""
    import uvicorn

    from controller.app import create_app
    from controller.gcpolicy import freeze_startup_objects
    from controller.serving import uvicorn_config
    from controller.settings import Settings

    os.umask(0o077)  # the data folder's files are the controller's alone (controller/datadir.py)
    settings = Settings()
    config = uvicorn_config(
        create_app(settings), host, port, settings.trusted_proxies, log_level="info"
    )
    freeze_startup_objects()
    uvicorn.Server(config).run()


@app.command("ingest-child", hidden=True)
def ingest_child() -> None:
    """An ingest process the controller starts itself (settings as JSON on standard input)."""
    from controller.ingest.children import run_child

    run_child()


@app.command("ingest-leave")
def ingest_leave(
    first: int = typer.Option(
        0, "--from", help="leave the sessions of ingest processes from this one on (0: all)"
    ),
) -> None:
    """Take this controller's ingest sessions out of the broker's shared group, before retiring
    the controller or lowering STREETPOLE_INGEST_PROCESSES (run it with the controller stopped;
    else the broker goes on handing the old sessions their turn of the stream until they
    expire)."""
    import asyncio

    from controller.ingest.worker import leave_group
    from controller.settings import Settings

    for client_id in asyncio.run(leave_group(Settings(), first)):
        typer.echo(f"left: {client_id}")


@app.command()
def migrate() -> None:
    """Bring the registry's schema up to date (also done at every start)."""
    with _registry():
        pass  # opening the registry migrates it
    typer.echo("registry schema is up to date")


@app.command("create-owner")
def create_owner(
    slug: str,
    name: str | None = typer.Option(None, help="the organisation's name (default: the slug)"),
    kind: str = typer.Option("market", help="municipality, market, utility, research or other"),
) -> None:
    """Add an organisation that owns poles or modules (before its accounts: --owner SLUG)."""
    from pydantic import ValidationError

    from controller.api.schemas import OwnerIn
    from controller.registry.accounts import create_owner as make

    try:
        body = OwnerIn(slug=slug, name=name or slug, kind=kind)
    except ValidationError as e:
        err = e.errors()[0]
        raise typer.BadParameter(f"{err['loc'][0]}: {err['msg']}") from None
    with _registry() as reg:
        try:
            make(reg, body.slug, body.name, body.kind)
        except ValueError as e:
            raise typer.BadParameter(str(e)) from None
    typer.echo(f"owner {body.slug} ({body.kind}) added")


@app.command("create-user")
def create_user(
    username: str,
    role: str | None = typer.Option(
        None, help="admin, operator, technician or viewer [default: the account's, or viewer]"
    ),
    owner: str | None = typer.Option(
        None, help="owner slug, for an owner-scoped account [default: the account's]"
    ),
    password: str | None = typer.Option(None, help="default: a random one, printed"),
) -> None:
    """Create an account, or reset its password and role (`create-user admin` resets the admin's
    password). An owner-scoped account needs its owner first: `create-owner SLUG`."""
    from controller.registry.accounts import account_of
    from controller.registry.accounts import create_user as make

    pw = password or secrets.token_urlsafe(12)
    with _registry() as reg:
        # a password reset keeps what the account was: `create-user admin` stays an admin, and
        # an owner-scoped account is not widened to the whole city by leaving out --owner
        role_was, owner_was = account_of(reg, username) or ("viewer", None)
        role = role or role_was
        owner = owner or owner_was
        try:
            make(reg, username, pw, role, owner)
        except ValueError as e:
            raise typer.BadParameter(str(e)) from None
    typer.echo(f"account {username} ({role}) password: {pw}")


@app.command("create-token")
def create_token(
    username: str,
    name: str = typer.Option("cli", help="what the token is for"),
    days: int | None = typer.Option(None, help="valid this many days (default: until revoked)"),
) -> None:
    """Print a new API token for an account (shown once)."""
    from controller.registry.accounts import create_token as make

    with _registry() as reg:
        try:
            token = make(reg, username, name, days)
        except ValueError as e:
            raise typer.BadParameter(str(e)) from None
    typer.echo(token)


@app.command("provision-node")
def provision_node(
    pole: str,
    node: str = typer.Option("n1"),
    hardware_id: str | None = typer.Option(None),
    board: str = typer.Option("streetpole-esp32-v1"),
    replace: bool = typer.Option(False, "--replace", help="replace a node heard lately"),
    url: str = typer.Option("http://127.0.0.1:8000", envvar="STREETPOLE_API_URL"),
    token: str = typer.Option(..., envvar="STREETPOLE_TOKEN", help="technician token or above"),
) -> None:
    """Provision a node through the running controller; prints its credentials as JSON."""
    import httpx

    r = httpx.post(
        f"{url}/api/nodes",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "pole": pole,
            "node": node,
            "hardware_id": hardware_id,
            "board": board,
            "replace": replace,
        },
        timeout=30,
    )
    if r.status_code >= 300:
        typer.echo(f"refused ({r.status_code}): {r.json().get('detail')}", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(r.json(), indent=2))


def main() -> None:
    """`python -m controller`: the controller's commands alone (usage lines name them as the
    `streetpole` command does, which is how people run them)."""
    app(prog_name="streetpole")
