"""Run the controller as a separate process (`python -m controller serve`), as in production."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from controller.broker import free_port
from hostlib.process import terminate

from .paths import ROOT


class ControllerProcess:
    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.env = dict(os.environ, STREETPOLE_DATA_DIR=str(data_dir), **(env or {}))
        self.log = data_dir / "controller.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_ready: bool = True, timeout: float = 30) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "controller", "serve", "--port", str(self.port)],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("controller exited:\n" + self.log.read_text())
            try:
                r = httpx.get(self.url + ("/readyz" if wait_ready else "/healthz"), timeout=1)
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError("controller not ready:\n" + self.log.read_text())

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as in a crash or power loss of the process."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, timeout=10)
            self.proc = None

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10)

    def ingest_share(self) -> float:
        """Messages this process's own ingest took (its /metrics counts only its share of the
        shared subscription, not its ingest children's)."""
        return sum(
            float(line.split()[-1])
            for line in self.get("/metrics").text.splitlines()
            if line.startswith("streetpole_ingest_messages_total{")
        )
