"""`streetpole firmware ...`: build the application archive a campaign rolls out, upload it, and
start, halt and follow campaigns through the running controller's API (operator or admin token,
like `provision-node`).

It sits in the `streetpole` package because `archive` builds with the technician's tools
(fieldtools.build: the same compile a node gets) and the rest speaks to the controller.
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from pathlib import Path
from typing import Any

import typer

firmware_app = typer.Typer(help="Firmware packages and rollout campaigns", no_args_is_help=True)
campaign_app = typer.Typer(help="Start, halt and follow rollout campaigns", no_args_is_help=True)
firmware_app.add_typer(campaign_app, name="campaign")

URL = typer.Option("http://127.0.0.1:8000", envvar="STREETPOLE_API_URL", help="the controller")
TOKEN = typer.Option(..., envvar="STREETPOLE_TOKEN", help="operator or admin token")
OUT = typer.Option(None, help="default: build/streetpole-<version>.spa")
ARCHIVE = typer.Argument(..., exists=True, dir_okay=False, help="a .spa archive or an image")
NAME_VERSION = re.compile(r"streetpole-([0-9]+\.[0-9]+\.[0-9]+(?:[-+][0-9A-Za-z.]+)?)\.spa$")


class Api:
    """The controller's API for one command; a refusal is one line with the server's reason
    and exit status 1."""

    def __init__(self, url: str, token: str) -> None:
        import httpx

        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )

    def __call__(self, method: str, path: str, **kw: Any) -> Any:
        import httpx

        try:
            r = self.http.request(method, path, **kw)
        except httpx.HTTPError as e:
            typer.echo(
                f"streetpole: controller not reachable at {self.http.base_url}: {e}", err=True
            )
            raise typer.Exit(1) from None
        if r.status_code >= 300:
            try:
                detail = r.json().get("detail")
            except ValueError:
                detail = r.text[:300]
            typer.echo(f"refused ({r.status_code}): {detail}", err=True)
            raise typer.Exit(1)
        return r.json() if r.content else None


@firmware_app.command()
def archive(
    out: Path | None = OUT,
    board: str = typer.Option("streetpole-esp32-v1", help="board the modules are compiled for"),
) -> None:
    """Build the SPA1 archive of the node application (the .mpy tree under app/), as a
    campaign of kind "tree" rolls it out; prints its path and version."""
    from fieldtools.build import build, firmware_version, spa_archive
    from fieldtools.errors import FieldError

    version = firmware_version()
    target = out or Path("build") / f"streetpole-{version}.spa"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            b = build(Path(tmp), board)
    except FieldError as e:
        typer.echo(f"streetpole: {e.message}" + (f"\n{e.hint}" if e.hint else ""), err=True)
        raise typer.Exit(1) from None
    data, files = spa_archive(b)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    typer.echo(f"{target}  version {version}, {files} files, {len(data)} bytes")


@firmware_app.command()
def upload(
    path: Path = ARCHIVE,
    version: str | None = typer.Option(None, help="default: from the name streetpole-<v>.spa"),
    notes: str = typer.Option("", help="release notes"),
    url: str = URL,
    token: str = TOKEN,
) -> None:
    """Upload a package; the controller checks it as a node would. Prints its id."""
    if version is None:
        m = NAME_VERSION.search(path.name)
        if m is None:
            raise typer.BadParameter("give --version (the name is not streetpole-<version>.spa)")
        version = m.group(1)
    pkg = Api(url, token)(
        "POST",
        "/api/firmware",
        data={"version": version, "notes": notes},
        files={"file": (path.name, path.read_bytes())},
    )
    typer.echo(f"package {pkg['id']}: {pkg['version']} ({pkg['kind']}, {pkg['size']} bytes)")


@firmware_app.command("list")
def list_packages(url: str = URL, token: str = TOKEN) -> None:
    """The uploaded packages, newest first."""
    for pkg in Api(url, token)("GET", "/api/firmware"):
        typer.echo(f"{pkg['id']:>4}  {pkg['version']:<16} {pkg['kind']:<6} {pkg['uploaded_by']}")


def _package_id(api: Api, package: str) -> int:
    for pkg in api("GET", "/api/firmware"):
        if package in (str(pkg["id"]), pkg["version"]):
            return int(pkg["id"])
    raise typer.BadParameter(f"no package {package!r} (id or version; `firmware list`)")


def _group_id(api: Api, group: str) -> int:
    for g in api("GET", "/api/groups"):
        if group in (str(g["id"]), g["name"]):
            return int(g["id"])
    raise typer.BadParameter(f"no group {group!r} (id or name)")


def _show(c: dict[str, Any]) -> str:
    counts = ", ".join(f"{k} {v}" for k, v in sorted(c["nodes"].items())) or "no nodes"
    why = f" ({c['halted_reason']})" if c.get("halted_reason") else ""
    return f"campaign {c['id']}: {c['state']}{why}; {counts}"


@campaign_app.command()
def start(
    package: str = typer.Option(..., help="package id or version"),
    group: str | None = typer.Option(None, help="group name or id"),
    poles: str | None = typer.Option(None, help="or: comma-separated pole ids (a group is made)"),
    batch: float = typer.Option(10.0, help="nodes sent the update per minute"),
    failure_threshold: float = typer.Option(0.2, help="halt when this share failed (0-1)"),
    min_finished: int = typer.Option(3, help="judge the failure share from this many nodes"),
    timeout_s: int = typer.Option(1800, help="a node not done by then counts as failed"),
    url: str = URL,
    token: str = TOKEN,
) -> None:
    """Roll a package out to a group (or to a list of poles), paced, halting by itself."""
    if (group is None) == (poles is None):
        raise typer.BadParameter("give --group or --poles")
    api = Api(url, token)
    pkg = _package_id(api, package)
    if poles is not None:
        ids = [p.strip() for p in poles.split(",") if p.strip()]
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        made = api("POST", "/api/groups", json={"name": f"rollout {stamp}", "poles": ids})
        gid = int(made["id"])
        typer.echo(f"group {made['name']!r} made with {len(ids)} poles")
    else:
        gid = _group_id(api, group or "")
    c = api(
        "POST",
        "/api/campaigns",
        json={
            "package_id": pkg,
            "group_id": gid,
            "nodes_per_minute": batch,
            "failure_threshold": failure_threshold,
            "min_finished": min_finished,
            "timeout_s": timeout_s,
        },
    )
    typer.echo(_show(c))


@campaign_app.command()
def halt(campaign: int, url: str = URL, token: str = TOKEN) -> None:
    """Halt a running campaign (nodes already updating finish; no new ones start)."""
    typer.echo(_show(Api(url, token)("POST", f"/api/campaigns/{campaign}/halt")))


@campaign_app.command()
def status(
    campaign: int | None = typer.Argument(None, help="one campaign, with its nodes"),
    url: str = URL,
    token: str = TOKEN,
) -> None:
    """Every campaign's state and counts, or one campaign's nodes."""
    api = Api(url, token)
    if campaign is None:
        for c in api("GET", "/api/campaigns"):
            typer.echo(_show(c))
        return
    typer.echo(_show(api("GET", f"/api/campaigns/{campaign}")))
    for n in api("GET", f"/api/campaigns/{campaign}/nodes"):
        typer.echo(f"  node {n['node_id']:>5}  {n['state']:<12} {n['reason'] or ''}".rstrip())
