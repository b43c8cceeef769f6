"""The FastAPI application factory. Everything with a lifetime (store, registry, ingest,
dispatch) is opened in the lifespan, not at import, so tests and workers can run several apps
side by side."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.exc import DatabaseError, IntegrityError
from sqlalchemy.exc import TimeoutError as SqlTimeout

from controller import dashboard, fleet, opendata
from controller.api.routes import (
    alarms,
    auth,
    commissioning,
    dimming,
    firmware,
    health,
    ingest,
    nodes,
    registry,
)
from controller.dashboard import apidocs
from controller.dashboard.events import Hub
from controller.dispatch import Dispatcher
from controller.health import Readiness, integrity_at_start
from controller.ingest import children
from controller.lifecycle import ingest_worker, opened
from controller.opendata.service import OpenData
from controller.registry.db import RegistryBusy, error_reason
from controller.registry.models import Campaign
from controller.security import dummy_hash
from controller.settings import Settings
from controller.state import AppState
from protocols.errors import ProtocolError

log = logging.getLogger("streetpole")
T = TypeVar("T")

TAGS = [
    {"name": "accounts", "description": "Log in, tokens, operator accounts (admin)."},
    {"name": "registry", "description": "Owners, poles, modules and groups."},
    {"name": "nodes", "description": "Provisioning, configs and commands of nodes."},
    {"name": "dimming", "description": "Programs, profiles and overrides."},
    {"name": "firmware", "description": "Packages and rollout campaigns."},
    {"name": "alarms and energy", "description": "Alarms, energy, the audit log."},
    {"name": "ingest", "description": "What the MQTT ingest saw."},
    {"name": "health", "description": "Liveness, readiness, metrics."},
]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with opened(settings) as state:
            await asyncio.to_thread(dummy_hash)  # made once, before the first login is timed
            state.readiness = Readiness(
                settings, state.registry, integrity_at_start(settings, state.registry)
            )
            for problem in state.readiness.at_start.values():
                log.error("not ready: %s", problem)
            app.state.streetpole = state
            app.state.opendata = OpenData(state)
            app.state.dashboard_hub = Hub(state.registry)
            with state.registry.session() as db:
                state.accounts.load(db)
            await asyncio.to_thread(state.accounts.write_now)
            tasks = [asyncio.create_task(state.leadership.run(), name="leadership")]
            if settings.dispatch_enabled:
                state.dispatcher = Dispatcher(settings, state.registry, state.leadership.leading)
                tasks.append(asyncio.create_task(state.dispatcher.run(), name="dispatch"))
            if settings.ingest_enabled:
                state.ingest = ingest_worker(state)
                tasks.append(asyncio.create_task(state.ingest.run(), name="ingest"))
                group = state.ingest.group()
                if settings.ingest_processes > 1 and group is not None:
                    tasks.append(
                        asyncio.create_task(
                            children.supervise(settings, group), name="ingest-children"
                        )
                    )
            tasks.append(asyncio.create_task(_retention(state), name="retention"))
            tasks.append(asyncio.create_task(_fleet_loop(state), name="fleet"))
            try:
                yield
            finally:
                for t in tasks:
                    t.cancel()
                for t in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await t
                state.readiness.close()

    app = FastAPI(
        title="Streetpole controller",
        version="0.1.0",
        description="Operator and open-data APIs of Streetpole, open smart street poles.",
        lifespan=lifespan,
        openapi_tags=TAGS,
        docs_url=None,  # /docs and /redoc from local assets: controller/dashboard/apidocs.py
        redoc_url=None,
    )
    for module in (health, auth, registry, nodes, dimming, firmware, alarms, ingest, commissioning):
        app.include_router(module.router)
    opendata.install(app, settings)  # public SensorThings API and downloads (controller/opendata)
    dashboard.install(app)  # /dashboard, /portal, /ui static, live events (controller/dashboard)
    apidocs.install(app)

    @app.exception_handler(IntegrityError)
    async def _conflict(_req: Request, exc: IntegrityError) -> JSONResponse:
        reason = str(exc.orig).splitlines()[0] if exc.orig else "constraint violated"
        return JSONResponse({"detail": f"conflicts with what is stored: {reason}"}, 409)

    @app.exception_handler(RegistryBusy)
    @app.exception_handler(DatabaseError)  # IntegrityError, more specific, stays a 409
    @app.exception_handler(SqlTimeout)
    @app.exception_handler(sqlite3.DatabaseError)
    async def _unavailable(_req: Request, exc: Exception) -> JSONResponse:
        # locked, full, read-only, corrupt, no connection free: the database, not the request;
        # said so with a reason and a time to come back, never as a 500
        reason = error_reason(exc)
        log.warning("database unavailable: %s", reason)
        return JSONResponse(
            {"detail": f"storage unavailable: {reason}; try again later"},
            503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(ProtocolError)
    async def _protocol(_req: Request, exc: ProtocolError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, 422)

    return app


async def _thread_to_the_end(fn: Callable[[], T]) -> T:
    """``fn`` in a thread; when cancelled (at shutdown), wait for the thread to finish before
    giving way: the lifespan closes the stores next, and closing an SQLite connection that a
    thread is still using crashed the process."""
    job = asyncio.ensure_future(asyncio.to_thread(fn))
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await job
        raise


async def _fleet_loop(state: AppState, period_s: float = 2.0) -> None:
    """When nodes were last heard (every controller, for what it ingested); and, on the leading
    controller only, nodes that went silent and campaign pacing and halting."""

    def work() -> None:
        # short transactions, one per job: the registry's write lock is held for one job's
        # writes, never for the whole round (state.transaction sends each one's messages)
        now = time.time()
        times = state.heard.take()
        leading = state.leadership.leading.is_set()
        try:
            with state.transaction() as db:
                fleet.write_heard(db, times)
                if leading:
                    periods = state.settings.offline_after_periods
                    fleet.mark_silent_nodes(db, now, periods, state.heard)
                    fleet.mark_never_heard(db, now, state.settings.never_heard_grace_s)
        except Exception:
            state.heard.give_back(times)  # a failed write must not make nodes look silent
            raise
        if not leading:
            return
        with state.registry.session() as db:
            running = db.scalars(select(Campaign.id).where(Campaign.state == "running")).all()
        for cid in running:
            with state.transaction() as db:
                c = db.get(Campaign, cid)
                if c is not None:
                    fleet.campaign_tick(db, c, now)

    while True:
        try:
            await _thread_to_the_end(work)
        except Exception:
            log.exception("fleet loop failed")
        state.fleet_rounds += 1
        await asyncio.sleep(period_s)


async def _retention(state: AppState, period_s: float = 3600) -> None:
    """Rolls up and deletes what is past its retention; the leading controller's job, since
    several controllers share one store only when they share a PostgreSQL registry too."""
    while True:
        await state.leadership.leading.wait()
        try:
            counts = await _thread_to_the_end(
                functools.partial(state.store.apply_retention, int(time.time()))
            )
            if any(counts.values()):
                log.info("retention: %s", counts)
        except Exception:
            log.exception("retention run failed")
        await asyncio.sleep(period_s)
