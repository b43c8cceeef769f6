"""The FastAPI application factory. Everything with a lifetime (store, ingest) is opened in the
lifespan, not at import, so tests and workers can run several apps side by side."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from controller.api.routes import health, ingest
from controller.ingest.worker import IngestWorker
from controller.metrics import Metrics
from controller.settings import Settings
from controller.state import AppState
from controller.store import open_store
from controller.store.ops import OpsStore

log = logging.getLogger("streetpole")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = open_store(settings)
        ops = OpsStore(settings.data_dir / "ops.db", settings.dead_letter_max)
        state = AppState(settings, store, ops, Metrics())
        app.state.streetpole = state
        tasks: list[asyncio.Task[None]] = []
        if settings.ingest_enabled:
            state.ingest = IngestWorker(settings, store, ops, state.metrics)
            tasks.append(asyncio.create_task(state.ingest.run(), name="ingest"))
        tasks.append(asyncio.create_task(_retention(state), name="retention"))
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            store.close()
            ops.close()

    app = FastAPI(
        title="Streetpole controller",
        version="0.1.0",
        description="Operator and open-data APIs of Streetpole, open smart street poles.",
        lifespan=lifespan,
    )
    app.include_router(health.router)
    app.include_router(ingest.router)
    return app


async def _retention(state: AppState, period_s: float = 3600) -> None:
    import time

    while True:
        try:
            counts = await asyncio.to_thread(state.store.apply_retention, int(time.time()))
            if any(counts.values()):
                log.info("retention: %s", counts)
        except Exception:
            log.exception("retention run failed")
        await asyncio.sleep(period_s)
