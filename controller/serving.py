"""How the controller's HTTP side is served (uvicorn), in one place for `streetpole serve` and
the tests that serve it: X-Forwarded-For and -Proto are believed only from the proxies in
``Settings.trusted_proxies`` (uvicorn on its own believes them from 127.0.0.1, so anything on
the same host could pick its own client address)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import uvicorn


def uvicorn_config(
    app: Any, host: str, port: int, trusted_proxies: Sequence[str], **options: Any
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=list(trusted_proxies),
        **options,
    )
