"""Edge of the open-data API (an ASGI middleware on /sta and /opendata only): read-only, CORS
open for reads, licence headers on every response, and rate limits per client IP and per token
(token buckets; 429 with Retry-After when empty).

Behind a reverse proxy the client IP is the proxy's; put the limit in the proxy there, or trust
X-Forwarded-For only from it (not done here).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections import OrderedDict
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controller.settings import Settings

PREFIXES = ("/sta", "/opendata")


class Buckets:
    """Token buckets by key; the least recently used are forgotten past ``max_keys``."""

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._b: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str, now: float) -> float:
        """0 when allowed, else the seconds until a request would be."""
        with self._lock:
            tokens, last = self._b.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._b[key] = (tokens - 1, now)
                wait = 0.0
            else:
                self._b[key] = (tokens, now)
                wait = (1 - tokens) / self.rate
            while len(self._b) > self.max_keys:
                self._b.popitem(last=False)
            return wait


class OpenDataEdge:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.ip = Buckets(settings.opendata_ip_rate, settings.opendata_ip_burst)
        self.token = Buckets(settings.opendata_token_rate, settings.opendata_token_burst)
        s = settings
        self.headers = [
            (b"access-control-allow-origin", b"*"),
            (b"access-control-expose-headers", b"Link, X-License, X-Attribution, Retry-After"),
            (b"link", f'<{s.opendata_licence_url}>; rel="license"'.encode("latin-1", "replace")),
            (b"x-license", s.opendata_licence.encode("latin-1", "replace")),
            (b"x-attribution", s.opendata_attribution.encode("latin-1", "replace")),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(PREFIXES):
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method == "OPTIONS":
            await self._reply(send, 204, b"", [(b"access-control-allow-methods", b"GET, HEAD")])
            return
        if method not in ("GET", "HEAD"):
            body = json.dumps({"code": 405, "type": "error", "message": "read-only API"})
            await self._reply(send, 405, body.encode(), [(b"allow", b"GET, HEAD")])
            return
        if self.settings.opendata_rate_limit:
            wait = self._limit(scope)
            if wait > 0:
                body = json.dumps(
                    {"code": 429, "type": "error", "message": "too many requests, slow down"}
                )
                retry = str(max(1, math.ceil(wait))).encode()
                await self._reply(send, 429, body.encode(), [(b"retry-after", retry)])
                return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + self.headers
            await send(message)

        await self.app(scope, receive, with_headers)

    def _limit(self, scope: Scope) -> float:
        now = time.monotonic()
        auth = next((v for k, v in scope.get("headers", []) if k == b"authorization"), None)
        if auth:
            return self.token.take(hashlib.sha256(auth).hexdigest(), now)
        client: Any = scope.get("client")
        ip = client[0] if client else "unknown"
        return self.ip.take(ip, now)

    async def _reply(
        self, send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]]
    ) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *self.headers,
            *extra,
        ]
        if status == 204:
            headers = [*self.headers, *extra, (b"access-control-allow-headers", b"Authorization")]
            headers.append((b"access-control-max-age", b"86400"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
