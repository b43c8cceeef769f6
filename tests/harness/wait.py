"""Waiting for an event with a deadline, never for a fixed time: a test that sleeps is slow where
the event comes early and flaky where it comes late (a loaded machine)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


def wait_for(cond: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """``cond()``'s first true value; AssertionError past ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


async def until(cond: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """``wait_for`` for a coroutine: the event loop runs on while it waits."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.02)
