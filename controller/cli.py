"""The `streetpole` command line (also `python -m controller`)."""

from __future__ import annotations

import os

import typer

app = typer.Typer(help="Streetpole controller", no_args_is_help=True)


@app.callback()
def _root() -> None:
    """Streetpole controller: `serve`, and the operator commands."""


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(int(os.environ.get("PORT", "8000")), help="HTTP port (env PORT)"),
) -> None:
    """Run the controller: HTTP APIs and MQTT ingest (settings from STREETPOLE_* variables)."""
    import uvicorn

    from controller.app import create_app

    uvicorn.run(create_app(), host=host, port=port, log_level="info")


def main() -> None:
    app()
