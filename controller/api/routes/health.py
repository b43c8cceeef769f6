"""Liveness, readiness and Prometheus metrics.

All three are ``async``: they never wait for a thread of the pool the operator routes use, so
they answer while those are busy."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from controller.api.deps import State

router = APIRouter(tags=["health"])
LOOPBACK = ("127.0.0.1", "::1")


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Ready: registry and store intact and writable, disk space, broker connected",
)
async def readyz(state: State) -> JSONResponse:
    reasons: dict[str, str | None] = {}
    r = state.readiness
    if r is not None:
        reasons["registry"] = await r.registry_problem()
        reasons["store"] = r.store_problem(state.ingest.stats.write_error if state.ingest else None)
        reasons["disk"] = r.disk_problem()
    if state.ingest is not None:
        reasons["broker"] = None if state.ingest.connected.is_set() else "ingest not connected"
    checks = {k: v is None for k, v in reasons.items()}
    ok = all(checks.values())
    body = {
        "ready": ok,
        "checks": checks,
        "reasons": {k: v for k, v in reasons.items() if v},
        # not a check: of controllers sharing a registry, one leads (controller/leadership.py)
        "leader": state.leadership.leading.is_set(),
    }
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics (token or loopback, see settings)")
async def metrics(state: State, request: Request) -> Response:
    token = state.settings.metrics_token
    if token is not None:
        given = request.headers.get("authorization", "")
        want = f"Bearer {token.get_secret_value()}"
        if not hmac.compare_digest(given.encode(), want.encode()):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "metrics: needs Authorization: Bearer <STREETPOLE_METRICS_TOKEN>",
                headers={"WWW-Authenticate": "Bearer"},
            )
    elif request.client is None or request.client.host not in LOOPBACK:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "metrics: only from this machine unless STREETPOLE_METRICS_TOKEN is set",
        )
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
