"""A burst of concurrent requests from one account while a separate thread times /healthz: the
figures of issue 19 item 2 (the test and `make bench-api` both use it)."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx


@dataclass
class Burst:
    statuses: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # 5xx other than 503 + Retry-After, errors
    refused: int = 0  # 503 with Retry-After: allowed under overload
    healthz_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def healthz_p99_ms(self) -> float:
        if len(self.healthz_s) < 2:
            return max(self.healthz_s, default=0.0) * 1000
        return statistics.quantiles(self.healthz_s, n=100)[98] * 1000


def burst(url: str, token: str, paths: Sequence[str], n: int = 200) -> Burst:
    out = Burst()
    done = threading.Event()

    def probe() -> None:  # a thread of its own: the burst's client must not delay it
        with httpx.Client(base_url=url, timeout=30) as hc:
            while not done.is_set():
                t = time.perf_counter()
                try:
                    status = hc.get("/healthz").status_code
                except httpx.HTTPError as e:
                    status = 0
                    out.failures.append(f"/healthz: {e!r}")
                out.healthz_s.append(time.perf_counter() - t)
                if status not in (0, 200):
                    out.failures.append(f"/healthz: {status}")
                done.wait(0.02)

    async def load() -> list[httpx.Response | BaseException]:
        limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
        h = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as c:
            return await asyncio.gather(
                *(c.get(paths[i % len(paths)], headers=h) for i in range(n)),
                return_exceptions=True,
            )

    prober = threading.Thread(target=probe)
    prober.start()
    t0 = time.perf_counter()
    try:
        got = asyncio.run(load())
    finally:
        out.wall_s = time.perf_counter() - t0
        done.set()
        prober.join()
    for g in got:
        if isinstance(g, BaseException):
            out.failures.append(repr(g))
            continue
        out.statuses.append(g.status_code)
        if g.status_code == 503 and "retry-after" in g.headers:
            out.refused += 1
        elif g.status_code >= 500:
            out.failures.append(f"{g.request.url.path}: {g.status_code} {g.text[:100]}")
    return out
