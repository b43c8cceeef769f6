"""A throwaway PostgreSQL server for the registry tests (Debian's postgresql, started here).

As root, initdb and the server must run as the ``postgres`` user and the data folder must
belong to it; the binaries live in /usr/lib/postgresql/<version>/bin, not on PATH.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from controller.broker import free_port


def bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class Postgres:
    def __init__(self, settings: dict[str, str] | None = None) -> None:
        """``settings``: server settings (``-c name=value``) over the tests' defaults."""
        bd = bindir()
        if bd is None:
            raise FileNotFoundError("PostgreSQL not installed: run `make deps`")
        self.bin = bd
        self.dir = Path(tempfile.mkdtemp(prefix="streetpole-pg-"))
        self.port = free_port()
        self._as = [] if os.getuid() != 0 else ["runuser", "-u", "postgres", "--"]
        # fsync off: the tests' server survives its own crash (restart), not the machine's
        self.settings = {"listen_addresses": "127.0.0.1", "fsync": "off", **(settings or {})}

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        data = self.dir / "data"
        if os.getuid() == 0:
            shutil.chown(self.dir, "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
        self._start()

    def _start(self) -> None:
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.dir / "data"),
            "-l",
            str(self.dir / "log"),
            "-w",
            "-o",
            f"-p {self.port} -k {self.dir} "
            + " ".join(f"-c {k}={v}" for k, v in self.settings.items()),
            "start",
        )
        deadline = time.monotonic() + 30
        import psycopg

        while True:
            try:
                psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres").close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def pid(self) -> int:
        """The postmaster's process id (its children are the server's other processes)."""
        return int((self.dir / "data" / "postmaster.pid").read_text().split()[0])

    def restart(self) -> None:
        """A crash and a restart: immediate stop (the server processes quit at once, no
        shutdown checkpoint; recovery replays the WAL), then start again on the same port.
        (fsync=off only matters to an operating-system crash.)"""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "stop")
        self._start()

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    @property
    def dsn(self) -> str:
        """libpq's spelling of ``url`` (psycopg, the PostgreSQL time-series store)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        try:
            self._run(
                str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "stop"
            )
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


_schemas = itertools.count(1)


def fresh_schema(pg: Postgres) -> str:
    """A new, empty schema in ``pg``'s database and a libpq URL whose connections use it (its
    search_path): far cheaper than a database per test (CREATE DATABASE copies a template)."""
    import psycopg

    name = f"t{os.getpid()}_{next(_schemas)}"
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    return f"{pg.dsn}?options=-csearch_path%3D{name}"
