"""Ingest in several processes: the controller starts ``ingest_processes - 1`` children that only
ingest, and restarts any that ends.

Why: one CPython process decodes and stores at most one core's worth of messages (the GIL), and
on two cores that left the other core mostly idle while the broker could deliver five times as
much (issue #5). The children share the stream with the controller's own ingest through the
broker's shared subscription, each with its own persistent session and account (``<id>-<n>``,
see mqtt_auth.process_identity), and write into the same stores; on SQLite, one transaction at
a time (each store re-reads what another process may have changed: the horizon of its recent
buckets, new streams).

A child gets its settings as JSON on its standard input (not in its environment or command line,
where the broker password would be visible) and keeps reading it: when the controller ends, even
by SIGKILL, the pipe closes and the child stops. A child left running would take over the same
client id as the next controller's child, and the two would push each other off the broker.
What a child runs is the same ingest worker and fleet update as the controller's own, opened
the same way (controller/lifecycle.py); the retention job, the fleet's offline check, the
dispatcher and the HTTP APIs run in the controller only. Not shared: the Prometheus metrics and
``/ingest/stats`` count the controller's own share.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import subprocess
import sys
import threading

from controller.lifecycle import ingest_worker, opened
from controller.mqtt_auth import process_identity
from controller.settings import Settings
from hostlib.process import terminate

log = logging.getLogger("streetpole.ingest")

RESTART_DELAY_S = 2.0


def child_settings(settings: Settings, index: int, group: str) -> Settings:
    username, client_id = process_identity(
        settings.mqtt_username, settings.mqtt_client_id, str(index)
    )
    return settings.model_copy(
        update={
            "mqtt_username": username,
            "mqtt_client_id": client_id,
            "mqtt_shared_group": group,
            "ingest_processes": 1,
        }
    )


def _start(settings: Settings) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller", "ingest-child"], stdin=subprocess.PIPE
    )
    assert proc.stdin is not None
    proc.stdin.write(settings.model_dump_json().encode() + b"\n")
    proc.stdin.flush()  # the pipe stays open: its end tells the child we are gone
    return proc


async def supervise(settings: Settings, group: str) -> None:
    """Keep the children running until cancelled, then stop them."""
    wanted = [child_settings(settings, i, group) for i in range(1, settings.ingest_processes)]
    procs: list[subprocess.Popen[bytes] | None] = [None] * len(wanted)
    try:
        while True:
            for i, s in enumerate(wanted):
                proc = procs[i]
                if proc is not None and proc.poll() is not None:
                    log.warning("ingest child %d ended (%s): restarting", i + 1, proc.returncode)
                    procs[i] = None
                    await asyncio.sleep(RESTART_DELAY_S)
                if procs[i] is None:
                    procs[i] = await asyncio.to_thread(_start, s)
            await asyncio.sleep(1.0)
    finally:
        for proc in procs:
            if proc is not None:
                await asyncio.to_thread(terminate, proc, 10.0)


async def ingest_only(settings: Settings) -> None:
    """Ingest and its fleet update, nothing else, until cancelled: what a child runs."""
    with opened(settings) as state:
        await ingest_worker(state).run()


def run_child() -> None:
    """The ``ingest-child`` command: settings from standard input, ingest until it closes."""
    from controller.gcpolicy import freeze_startup_objects

    settings = Settings.model_validate_json(sys.stdin.buffer.readline())

    async def main() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def watch_parent() -> None:
            sys.stdin.buffer.read()  # returns when the controller closed the pipe, or died
            loop.call_soon_threadsafe(task.cancel)

        threading.Thread(target=watch_parent, daemon=True).start()
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await ingest_only(settings)

    logging.basicConfig(level=logging.INFO)
    freeze_startup_objects()
    asyncio.run(main())
