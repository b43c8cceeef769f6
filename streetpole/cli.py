"""The `streetpole` command: the controller's commands (`serve`, `create-user`, ...; controller/
cli.py) and the technician's `streetpole node ...` (fieldtools/cli.py) under one name.

It sits above both packages so that neither imports the other (tests/test_layers.py). Both
modules import only typer at the top and the rest inside each command, so a technician's install
(`pip install -e ".[tools]"`, no FastAPI or SQLAlchemy) runs every `node` command, and the
controller's commands say what is missing instead of failing at start.
"""

from __future__ import annotations

import typer

from controller.cli import app as controller_app
from fieldtools.cli import node_app
from streetpole.firmware import firmware_app

PROG = "streetpole"  # usage lines name the command, also when run as `python -m streetpole`
app = typer.Typer(
    help="Streetpole: the controller and the field technician's tools",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rich's boxes cut defaults at 80 columns
)
app.add_typer(controller_app)  # its commands at the top level: streetpole serve, ...
app.add_typer(node_app, name="node")
app.add_typer(firmware_app, name="firmware")


def main() -> None:
    try:
        app(prog_name=PROG)
    except ModuleNotFoundError as e:  # an install without the extra this command needs
        typer.echo(
            f"streetpole: Python package {e.name!r} is not installed; the controller's commands "
            "need the [controller] extra, `node` the [tools] extra (README, Install)",
            err=True,
        )
        raise SystemExit(1) from None
