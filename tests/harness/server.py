"""The controller app served by uvicorn on a free loopback port, in a thread of the test."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import httpx
import uvicorn
from fastapi import FastAPI

from controller.broker import free_port
from controller.serving import uvicorn_config


@contextmanager
def serve(app: FastAPI, trusted_proxies: Sequence[str] = ()) -> Iterator[str]:
    """Served as `streetpole serve` serves it (controller/serving.py)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn_config(app, "127.0.0.1", port, trusted_proxies, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(10)
