"""Edge of the open-data API (an ASGI middleware on /sta and /opendata only): read-only, CORS
open for reads, licence headers on every response, and rate limits (token buckets; 429 with
Retry-After when empty).

Two limits: every request, whatever it carries, takes from the bucket of its client's address
(here, before any work); a request with a bearer token that validates also takes from that
token's bucket (in the routes, after the lookup), so a made-up token buys nothing and a valid
one is limited wherever it is used from. An IPv6 client is counted by its /64, which one
subscriber usually holds whole. The client's address is the peer's, or the one a configured
proxy forwarded (``trusted_proxies``, applied where the app is served: controller/serving.py).

Written here rather than taken from a library: the two limits meet at different places (the
edge and the token lookup), which the rate-limit packages for Starlette do not model.
"""

from __future__ import annotations

import ipaddress
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controller.settings import Settings

PREFIXES = ("/sta", "/opendata")


def public(path: str) -> bool:
    """An open-data path: /sta, /opendata and below, not /stats or /opendata-x."""
    return any(path == p or path.startswith(p + "/") for p in PREFIXES)


READ = ("GET", "HEAD")


class Buckets:
    """Token buckets by key; the least recently used are forgotten past ``max_keys``."""

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._b: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._b)

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


class RateLimited(Exception):
    """HTTP 429; ``retry_after`` in whole seconds."""

    def __init__(self, wait_s: float) -> None:
        super().__init__("too many requests, slow down")
        self.retry_after = max(1, math.ceil(wait_s))


class Overloaded(Exception):
    """HTTP 503 with Retry-After: try again shortly."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Downloads:
    """How many CSV downloads stream at once, in all and per client address. A download runs
    for as long as its client reads, so a few slow readers could otherwise hold every worker;
    past these, 503 with Retry-After rather than a queue."""

    def __init__(self, total: int, per_client: int) -> None:
        self.total = total
        self.per_client = per_client
        self.running = 0
        self._by_client: dict[str, int] = {}
        self._lock = threading.Lock()

    def enter(self, host: str | None) -> Callable[[], None]:
        """Take a place (Overloaded when none is free); call what it returns once, when done."""
        key = client_key(host)
        with self._lock:
            if self.running >= self.total:
                raise Overloaded(f"{self.total} downloads are running; try again shortly")
            if self._by_client.get(key, 0) >= self.per_client:
                raise Overloaded(f"{self.per_client} downloads of yours are running already")
            self.running += 1
            self._by_client[key] = self._by_client.get(key, 0) + 1
        done = threading.Event()

        def release() -> None:
            with self._lock:
                if done.is_set():
                    return
                done.set()
                self.running -= 1
                left = self._by_client[key] - 1
                if left:
                    self._by_client[key] = left
                else:
                    del self._by_client[key]

        return release


class Released(Iterator[str]):
    """Iterates ``chunks`` and calls ``release`` once: at their end, on an error, on close, or
    when dropped unread (a generator that never started runs no ``finally``)."""

    def __init__(self, chunks: Iterator[str], release: Callable[[], None]) -> None:
        self.chunks = chunks
        self.release = release

    def __next__(self) -> str:
        try:
            return next(self.chunks)
        except BaseException:
            self.release()
            raise

    def close(self) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


def client_key(host: str | None) -> str:
    """The bucket of a client address: IPv4 as is, IPv6 by its /64."""
    if not host:
        return "unknown"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class Limits:
    """The open-data rate limits of one app: per client address and per validated token."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.opendata_rate_limit
        self.ip = Buckets(settings.opendata_ip_rate, settings.opendata_ip_burst)
        self.token = Buckets(settings.opendata_token_rate, settings.opendata_token_burst)
        self.downloads = Downloads(
            settings.opendata_downloads, settings.opendata_downloads_per_client
        )

    def take_ip(self, host: str | None) -> float:
        """0 when allowed, else the seconds to wait."""
        if not self.enabled:
            return 0.0
        return self.ip.take(client_key(host), time.monotonic())

    def take_token(self, key: str) -> None:
        """For a token that validated (``key``: its hash); raises RateLimited when spent."""
        if not self.enabled:
            return
        wait = self.token.take(key, time.monotonic())
        if wait > 0:
            raise RateLimited(wait)


def error_body(code: int, message: str) -> bytes:
    return json.dumps({"code": code, "type": "error", "message": message}).encode()


def _without_body(send: Send) -> Send:
    ended = False

    async def head(message: Message) -> None:
        nonlocal ended
        if message["type"] != "http.response.body":
            await send(message)
        elif not ended:
            ended = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    return head


class OpenDataEdge:
    def __init__(self, app: ASGIApp, settings: Settings, limits: Limits) -> None:
        self.app = app
        self.limits = limits
        s = settings
        self.headers = [
            (b"access-control-allow-origin", b"*"),
            (
                b"access-control-expose-headers",
                b"Link, X-License, X-Attribution, Retry-After, X-Time-Range",
            ),
            (b"link", f'<{s.opendata_licence_url}>; rel="license"'.encode("latin-1", "replace")),
            (b"x-license", s.opendata_licence.encode("latin-1", "replace")),
            (b"x-attribution", s.opendata_attribution.encode("latin-1", "replace")),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not public(path):
            await self.app(scope, receive, send)
            return
        client: Any = scope.get("client")
        wait = self.limits.take_ip(client[0] if client else None)
        if wait > 0:
            limited = RateLimited(wait)
            retry = str(limited.retry_after).encode()
            await self._reply(send, 429, error_body(429, str(limited)), [(b"retry-after", retry)])
            return
        method = scope["method"]
        if method == "OPTIONS":
            await self._reply(send, 204, b"", [(b"access-control-allow-methods", b"GET, HEAD")])
            return
        if method not in READ:
            await self._reply(
                send, 405, error_body(405, "read-only API"), [(b"allow", b"GET, HEAD")]
            )
            return

        if method == "HEAD":  # the routes are GET only: answer as GET, without the body
            scope = {**scope, "method": "GET"}
            send = _without_body(send)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + self.headers
            await send(message)

        await self.app(scope, receive, with_headers)

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
