"""The operator dashboard (``/dashboard``), the public portal (``/portal``) and the open-data
landing page (``/opendata``), their static files (``/ui``) and the few API routes only the
dashboard needs: a pole's measurements and the live event stream. Everything else the pages
show comes from the operator API (``/api``) and, on the public pages, from the open-data API
alone."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

from controller.api.auth import DB, Viewer
from controller.api.deps import State
from controller.api.routes.registry import get_pole
from controller.dashboard import assets, i18n, series
from controller.dashboard.events import Hub

STATIC = Path(__file__).resolve().parent / "static"

# Pages load only what this controller serves: no CDN, no tile server, no inline script.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api", tags=["dashboard"])


def _missing() -> Response | None:
    absent = assets.missing()
    if absent:
        return HTMLResponse(
            "<!doctype html><html lang=en><title>Streetpole: assets missing</title>"
            "<h1>Browser libraries missing</h1><p>Run <code>make assets</code> (part of "
            f"<code>make deps</code>); not found in static/vendor: {', '.join(absent)}.</p>",
            status.HTTP_503_SERVICE_UNAVAILABLE,
            headers=PAGE_HEADERS,
        )
    return None


def _page(name: str) -> Response:
    return _missing() or HTMLResponse(
        (STATIC / name).read_text(encoding="utf-8"), headers=PAGE_HEADERS
    )


@pages.get("/dashboard", response_class=HTMLResponse)
def dashboard() -> Response:
    return _page("dashboard.html")


@pages.get("/portal", response_class=HTMLResponse)
def portal(request: Request) -> Response:
    """The public portal, in Dutch or English (controller/dashboard/i18n.py)."""
    return _missing() or i18n.page(request, "portal.html", PAGE_HEADERS)


@pages.get("/opendata", response_class=HTMLResponse)
def opendata_landing(request: Request, state: State) -> Response:
    """The open-data landing page for consumers, in Dutch or English, styled as the portal.
    Needs no browser libraries: a page of links that also reads without scripts."""
    s = state.settings
    return i18n.page(
        request,
        "opendata.html",
        PAGE_HEADERS,
        base=str(request.base_url).rstrip("/"),
        licence=s.opendata_licence,
        licence_url=s.opendata_licence_url,
        attribution=s.opendata_attribution,
        contact=s.opendata_contact,
    )


# ---- a pole's measurements -----------------------------------------------------------------
Epoch = Annotated[int, Query(ge=0, le=2**32)]


@api.get("/dashboard/poles/{pole_id}/latest", summary="Latest value of each stream of a pole")
def pole_latest(db: DB, state: State, p: Viewer, pole_id: str) -> dict[str, Any]:
    pole = get_pole(db, p, pole_id)
    streams = series.visible_streams(state.store, p, pole)
    return {"pole": pole.id, "value": series.latest(state.store, streams)}


@api.get("/dashboard/poles/{pole_id}/series", summary="Chart series of a pole over a range")
def pole_series(
    db: DB,
    state: State,
    p: Viewer,
    pole_id: str,
    start: Epoch,
    end: Epoch,
    q: Annotated[list[str] | None, Query(max_length=32)] = None,
    window: series.Window = "raw",
) -> dict[str, Any]:
    if end <= start or end - start > series.MAX_RANGE_S:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"end: must be after start, at most {series.MAX_RANGE_S // 86400} days later",
        )
    pole = get_pole(db, p, pole_id)
    streams = series.visible_streams(state.store, p, pole)
    if q:
        streams = [s for s in streams if s.key.q in q]
    return {
        "pole": pole.id,
        "start": start,
        "end": end,
        "value": series.series(state.store, streams, start, end, window),
    }


# ---- live events ---------------------------------------------------------------------------
def get_hub(request: Request) -> Hub:
    hub: Hub = request.app.state.dashboard_hub  # made in the lifespan (controller/app.py)
    return hub


HubDep = Annotated[Hub, Depends(get_hub)]


@api.post("/events/ticket", summary="A single-use ticket (30 s) to open the event stream")
def events_ticket(p: Viewer, hub: HubDep) -> dict[str, Any]:
    try:
        ticket = hub.ticket(p)
    except OverflowError as e:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, str(e)) from None
    return {"ticket": ticket, "expires_in": 30, "stream": f"/api/events/stream?ticket={ticket}"}


@api.get(
    "/events/stream",
    summary="Server-sent events: node state changes (`node`) and alarms (`alarm`)",
    response_class=StreamingResponse,
)
def events_stream(
    request: Request, hub: HubDep, ticket: Annotated[str, Query(min_length=10, max_length=100)]
) -> StreamingResponse:
    p = hub.redeem(ticket)
    if p is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown, used or expired ticket")
    return StreamingResponse(
        hub.stream(p, request.is_disconnected),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def install(app: FastAPI) -> None:
    app.include_router(pages)
    app.include_router(api)
    app.mount("/ui", StaticFiles(directory=STATIC), name="ui")


__all__ = ["install"]
