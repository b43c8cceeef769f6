"""Admission to the registry: a bounded number of requests in a transaction, a bounded queue,
and 503 with Retry-After past it.

Routes are synchronous and run in a thread each; the registry has a fixed pool of connections.
Unbounded, 45 concurrent requests took every thread waiting for a connection (the pool answered
500 after its timeout) and /healthz, queued behind them, timed out. Here a request waits for its
turn on the event loop, holding neither a thread nor a connection, and is refused quickly when
the queue is full or its wait too long. (An async rewrite of every route was the alternative;
this bounds the same resources with a change to one dependency.)
"""

from __future__ import annotations

import asyncio
import math

from fastapi import HTTPException, status


class Admission:
    def __init__(self, slots: int, queue: int, wait_s: float) -> None:
        self.slots = slots
        self.queue = queue
        self.wait_s = wait_s
        self._free = asyncio.Semaphore(slots)
        self.waiting = 0  # requests waiting for a turn
        self.in_flight = 0  # requests holding one
        self.refused = 0

    def _refuse(self, why: str) -> HTTPException:
        self.refused += 1
        return HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"controller busy: {why}; try again shortly",
            headers={"Retry-After": str(max(1, math.ceil(self.wait_s / 4)))},
        )

    async def enter(self) -> None:
        if self._free.locked() and self.waiting >= self.queue:
            raise self._refuse(f"{self.waiting} requests already waiting")
        self.waiting += 1
        try:
            # asyncio.timeout: 3.11's wait_for can swallow a cancel and leave the turn taken
            async with asyncio.timeout(self.wait_s):
                await self._free.acquire()
        except TimeoutError:
            raise self._refuse(f"no turn within {self.wait_s:g} s") from None
        finally:
            self.waiting -= 1
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1
        self._free.release()
