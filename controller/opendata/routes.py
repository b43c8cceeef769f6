"""HTTP routes of the open-data API: SensorThings 1.1 under /sta/v1.1, and under /opendata
latest values, aggregates, CSV, daily archives, GeoJSON and the sensor register.
Read-only and public; errors are JSON ``{"code", "type", "message"}`` as FROST-Server sends."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from controller.opendata import sta
from controller.opendata.access import InvalidToken
from controller.opendata.catalog import Access
from controller.opendata.entities import BY_PLURAL
from controller.opendata.gzipped import accepts_gzip, gzip_chunks
from controller.opendata.query import BadQuery, Unsupported, parse_options
from controller.opendata.ratelimit import Limits, OpenDataEdge, Overloaded, RateLimited, Released
from controller.opendata.render import iso
from controller.opendata.service import OpenData, register_summary
from controller.settings import Settings
from controller.store.base import QueryTooExpensive
from protocols.quantity_info import as_json as quantities_json

TAG_STA = "open data: SensorThings API 1.1"
TAG_DL = "open data: downloads, map, register"
ERROR = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "code": {"type": "integer"},
                    "type": {"type": "string"},
                    "message": {"type": "string"},
                    "detail": {"description": "from the framework, for unmatched paths"},
                },
            }
        }
    }
}
OBJ = {"content": {"application/json": {"schema": {"type": "object"}}}}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Bad request (the reason is in message)", **ERROR},
    401: {"description": "Invalid bearer token", **ERROR},
    404: {"description": "No such entity or resource", **ERROR},
    429: {"description": "Rate limit; see Retry-After", **ERROR},
    501: {"description": "Valid but not supported here", **ERROR},
    503: {
        "description": "Past the time budget (narrow the query) or too many downloads at once; "
        "see Retry-After",
        **ERROR,
    },
}

sta_router = APIRouter(prefix="/sta/v1.1", tags=[TAG_STA])
dl_router = APIRouter(prefix="/opendata", tags=[TAG_DL])
TIME_RANGE = "X-Time-Range"  # the window a download covers, start/end as ISO 8601
QUANTITIES_BODY = json.dumps(quantities_json(), separators=(",", ":"), ensure_ascii=False)


def _error(code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps({"code": code, "type": "error", "message": message})
    return Response(body, code, media_type="application/json", headers=headers)


def _json(body: Any, media_type: str = "application/json") -> Response:
    # orjson: the latest value of 4,200 Datastreams took the json module 12 ms, orjson 1 ms
    return Response(orjson.dumps(body), media_type=media_type)


def _guard(fn: Callable[[], Response]) -> Response:
    try:
        return fn()
    except BadQuery as e:
        return _error(400, str(e))
    except InvalidToken as e:
        return _error(401, str(e))
    except RateLimited as e:
        return _error(429, str(e), {"Retry-After": str(e.retry_after)})
    except (sta.NotFound, LookupError) as e:
        return _error(404, str(e.args[0]) if e.args else "not found")
    except (Unsupported, NotImplementedError) as e:
        return _error(501, str(e))
    except Overloaded as e:
        return _error(503, str(e), {"Retry-After": str(e.retry_after)})
    except QueryTooExpensive as e:
        return _error(
            503, f"{e}: narrow the query (time range, $filter, $top)", {"Retry-After": "10"}
        )


def _od(request: Request) -> OpenData:
    od: OpenData = request.app.state.opendata  # made in the lifespan (controller/app.py)
    return od


def _access(request: Request, od: OpenData) -> Access:
    """Who asks; a validated token also takes from its own rate-limit bucket."""
    access, key = od.tokens.access(request.headers.get("authorization"))
    if key is not None:
        limits: Limits = request.app.state.opendata_limits
        limits.take_token(key)
    return access


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


# ---- SensorThings -----------------------------------------------------------------------------


def _sta(request: Request, resource: str) -> Response:
    def run() -> Response:
        od = _od(request)
        cat = od.catalog(_access(request, od))
        opts = parse_options(request.query_params)

        def next_link(skip: int, top: int) -> str:
            return str(request.url.include_query_params(**{"$skip": skip, "$top": top}))

        ctx = sta.Ctx(
            cat, od.store, od.settings, _base(request) + "/sta/v1.1", time.time(), next_link
        )
        _status, body = sta.resolve(ctx, resource, opts)
        if isinstance(body, str):
            return Response(body, media_type="text/plain")
        return _json(body)

    return _guard(run)


def _sta_params(
    filter_: Annotated[str | None, Query(alias="$filter", description="e.g. result gt 10")] = None,
    orderby: Annotated[str | None, Query(alias="$orderby")] = None,
    top: Annotated[str | None, Query(alias="$top", description="page size (capped)")] = None,
    skip: Annotated[str | None, Query(alias="$skip")] = None,
    count: Annotated[str | None, Query(alias="$count", description="true or false")] = None,
    select: Annotated[str | None, Query(alias="$select")] = None,
    expand: Annotated[str | None, Query(alias="$expand")] = None,
    result_format: Annotated[str | None, Query(alias="$resultFormat")] = None,
) -> None:
    """Declares the query options for the OpenAPI document; they are parsed from the URL."""


STA_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "SensorThings JSON", **OBJ},
    **ERRORS,
}


@sta_router.get("", summary="SensorThings landing page", responses=STA_RESPONSES)
def sta_landing(request: Request) -> Response:
    return _json(sta.landing(_base(request) + "/sta/v1.1"))


def _collection_route(plural: str) -> None:
    def handler(request: Request) -> Response:
        return _sta(request, plural)

    handler.__name__ = f"sta_{plural.lower()}"

    sta_router.add_api_route(
        f"/{plural}",
        handler,
        methods=["GET"],
        summary=f"{plural} (with $filter, $orderby, $top, $skip, $count, $select, $expand)",
        responses=STA_RESPONSES,
        dependencies=[Depends(_sta_params)],
        response_class=Response,
    )


for _plural in BY_PLURAL:
    _collection_route(_plural)


@sta_router.get(
    "/{resource:path}",
    summary="Any SensorThings resource path: Things('RTD-0001')/Datastreams, .../$value, $ref",
    responses={
        200: {
            "description": "SensorThings JSON, or text for $value",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/plain": {"schema": {"type": "string"}},
            },
        },
        **ERRORS,
    },
    response_class=Response,
)
def sta_resource(request: Request, resource: Annotated[str, Path()]) -> Response:
    if resource == "":  # the service root as the standard writes it, /sta/v1.1/
        return sta_landing(request)
    return _sta(request, resource)


# ---- downloads, map, register --------------------------------------------------------------------

StartParam = Annotated[
    str | None,
    Query(description="ISO 8601, e.g. 2026-11-02T00:00:00Z (default: 24 h before end)"),
]
EndParam = Annotated[str | None, Query(description="ISO 8601 (default: now)")]
DsParam = Annotated[int | None, Query(ge=0, le=2**53, description="Datastream @iot.id")]
PoleParam = Annotated[str | None, Query(max_length=64, description="pole id")]
JSON_200: dict[int | str, dict[str, Any]] = {200: {"description": "JSON", **OBJ}, **ERRORS}
CSV_200: dict[int | str, dict[str, Any]] = {
    200: {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}},
    **ERRORS,
}


@dl_router.get("/v1", summary="Dataset description (JSON)", responses=JSON_200)
def metadata(request: Request) -> Response:
    s = _od(request).settings
    b = _base(request)
    return _json(
        {
            "title": s.opendata_title,
            "description": s.opendata_description,
            "contact": s.opendata_contact,
            "updateFrequency": s.opendata_update_frequency,
            "license": {"name": s.opendata_licence, "url": s.opendata_licence_url},
            "attribution": s.opendata_attribution,
            "motionIntervalSeconds": s.opendata_motion_interval_s,
            "links": {
                "sensorthings": f"{b}/sta/v1.1",
                "latest": f"{b}/opendata/v1/latest",
                "geojson": f"{b}/opendata/v1/poles.geojson",
                "archives": f"{b}/opendata/v1/archives",
                "register": f"{b}/opendata/v1/register",
                "registerSummary": f"{b}/opendata/v1/register/summary",
                "quantities": f"{b}/opendata/quantities.json",
                "openapi": f"{b}/opendata/openapi.json",
            },
        }
    )


@dl_router.get(
    "/quantities.json",
    summary="What each quantity is: names (en, nl), UCUM unit and symbol, display, guidelines",
    responses=JSON_200,
)
def quantities() -> Response:
    # the same for everyone, changing only with a release: caches may keep it an hour
    return Response(
        QUANTITIES_BODY,
        media_type="application/json",
        headers={"Cache-Control": "public, max-age=3600"},
    )


@dl_router.get(
    "/v1/latest", summary="The latest value of every published Datastream", responses=JSON_200
)
def latest(request: Request) -> Response:
    def run() -> Response:
        od = _od(request)
        cat = od.catalog(_access(request, od))
        return _json({"license": od.settings.opendata_licence_url, "value": od.latest(cat)})

    return _guard(run)


@dl_router.get(
    "/v1/aggregates",
    summary="count, mean, min, max per minute, hour or day, of a Datastream or a pole",
    responses=JSON_200,
)
def aggregates(
    request: Request,
    datastream: DsParam = None,
    pole: PoleParam = None,
    window: Literal["minute", "hour", "day"] = "hour",
    start: StartParam = None,
    end: EndParam = None,
) -> Response:
    def run() -> Response:
        od = _od(request)
        cat = od.catalog(_access(request, od))
        dss = od.pick(cat, datastream, pole)
        s, e = od.time_range(start, end, 86400)
        skip = datastream is None  # a pole's streams: its counts only in their own windows
        value = od.aggregates(cat, dss, s, e, window, skip_coarse=skip)
        return _json({"start": iso(s), "end": iso(e), "value": value})

    return _guard(run)


class _Download(StreamingResponse):
    """A CSV download that gives its place back however it ends. A client gone mid-stream ends
    it with an exception, and the iterator it was reading then lives on in that exception's
    traceback until a garbage collection: the place is given back here instead."""

    def __init__(
        self,
        chunks: Iterator[str] | Iterator[bytes],
        media_type: str,
        headers: dict[str, str],
        release: Callable[[], None],
    ) -> None:
        super().__init__(chunks, media_type=media_type, headers=headers)
        self.release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.release()


def _download(
    request: Request,
    make: Callable[[], tuple[Iterator[str], str, dict[str, str]]],
    gz_file: bool = False,
) -> Response:
    """A CSV download within the limits of downloads at once: gzipped as a file
    (``gz_file``: ``.csv.gz``, application/gzip) or in transit when the client accepts it."""
    limits: Limits = request.app.state.opendata_limits
    release = limits.downloads.enter(request.client.host if request.client else None)
    try:
        chunks, filename, extra = make()
    except BaseException:
        release()
        raise
    text = Released(chunks, release)
    if gz_file:
        disposition = f'attachment; filename="{filename}.gz"'
        h = {"Content-Disposition": disposition, **extra}
        return _Download(gzip_chunks(text), "application/gzip", h, release)
    h = {"Content-Disposition": f'attachment; filename="{filename}"', "Vary": "Accept-Encoding"}
    h.update(extra)
    if accepts_gzip(request.headers.get("accept-encoding")):
        h["Content-Encoding"] = "gzip"
        return _Download(gzip_chunks(text), "text/csv", h, release)
    return _Download(text, "text/csv", h, release)


CSV_WINDOW: dict[int | str, dict[str, Any]] = {
    200: {
        **CSV_200[200],
        "headers": {
            TIME_RANGE: {
                "description": "the window the CSV covers, start/end (ISO 8601)",
                "schema": {"type": "string"},
            }
        },
    }
}


@dl_router.get(
    "/v1/csv",
    summary="Observations of a Datastream or a pole as CSV (gzip on Accept-Encoding)",
    responses={**CSV_200, **CSV_WINDOW},
)
def csv(
    request: Request,
    datastream: DsParam = None,
    pole: PoleParam = None,
    start: StartParam = None,
    end: EndParam = None,
) -> Response:
    def make() -> tuple[Iterator[str], str, dict[str, str]]:
        od = _od(request)
        cat = od.catalog(_access(request, od))
        dss = od.pick(cat, datastream, pole)
        s, e = od.time_range(start, end, 86400)
        name = f"datastream-{datastream}" if datastream is not None else f"pole-{pole}"
        rows = od.csv_rows(cat, dss, s, e)
        first = next(rows)  # errors surface before the response starts

        def chunks() -> Iterator[str]:
            yield first
            yield from rows

        return chunks(), f"{name}.csv", {TIME_RANGE: f"{iso(s)}/{iso(e)}"}

    return _guard(lambda: _download(request, make))


@dl_router.get("/v1/archives", summary="Daily CSV archives (UTC days)", responses=JSON_200)
def archives(request: Request) -> Response:
    def run() -> Response:
        od = _od(request)
        cat = od.catalog(_access(request, od))
        # whole UTC days from the first published reading to the last, today left out
        span = cat.rows("SELECT min(phen_start), max(phen_end) FROM datastreams")[0]
        days: list[str] = []
        if span[0] is not None:
            first = datetime.fromtimestamp(span[0], UTC).date().toordinal()
            yesterday = datetime.now(UTC).date().toordinal() - 1
            last = min(datetime.fromtimestamp(span[1], UTC).date().toordinal(), yesterday)
            first = max(first, last - 365)
            days = [date.fromordinal(d).isoformat() for d in range(first, last + 1)]
        b = _base(request)
        return _json(
            {
                "license": od.settings.opendata_licence_url,
                "value": [
                    {
                        "day": d,
                        "url": f"{b}/opendata/v1/archives/{d}.csv",
                        "gzip": f"{b}/opendata/v1/archives/{d}.csv.gz",
                    }
                    for d in days
                ],
            }
        )

    return _guard(run)


DayParam = Annotated[str, Path(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD")]


def _archive(request: Request, day: str, gz_file: bool) -> Response:
    def make() -> tuple[Iterator[str], str, dict[str, str]]:
        od = _od(request)
        cat = od.catalog(_access(request, od))
        try:
            d = date.fromisoformat(day)
        except ValueError as e:
            raise BadQuery(f"not a date: {day!r}") from e
        start = int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())
        dss = sorted(cat.datastreams.values(), key=lambda x: x.id)
        rows = od.csv_rows(cat, dss, start, start + 86400)
        head = next(rows)
        first = next(rows, None)  # a day with nothing published has no archive
        if first is None:
            raise LookupError(f"no published observation on {day} (UTC); see /opendata/v1/archives")

        def chunks() -> Iterator[str]:
            yield head
            yield first
            yield from rows

        return chunks(), f"streetpole-{day}.csv", {}

    return _guard(lambda: _download(request, make, gz_file))


ARCHIVE_404: dict[int | str, dict[str, Any]] = {
    404: {"description": "No published observation on that day", **ERROR}
}


@dl_router.get(
    "/v1/archives/{day}.csv",
    summary="Every published Observation of one UTC day, as CSV (gzip on Accept-Encoding)",
    responses={**CSV_200, **ARCHIVE_404},
)
def archive(request: Request, day: DayParam) -> Response:
    return _archive(request, day, gz_file=False)


@dl_router.get(
    "/v1/archives/{day}.csv.gz",
    summary="The same archive as a gzip file",
    responses={
        200: {
            "description": "gzip of the CSV",
            "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}},
        },
        **ERRORS,
        **ARCHIVE_404,
    },
)
def archive_gz(request: Request, day: DayParam) -> Response:
    return _archive(request, day, gz_file=True)


@dl_router.get(
    "/v1/poles.geojson",
    summary="Every pole with the latest values of its published Datastreams",
    responses={
        200: {
            "description": "GeoJSON",
            "content": {"application/geo+json": {"schema": {"type": "object"}}},
        },
        **ERRORS,
    },
)
def geojson(request: Request) -> Response:
    def run() -> Response:
        od = _od(request)
        body = od.geojson(od.catalog(_access(request, od)))
        return _json(body, "application/geo+json")

    return _guard(run)


REGISTER_FIELDS = [
    *("id", "pole", "category", "sensorType", "owner", "ownerKind", "observationGoal"),
    *("isPublic", "isOpenData", "isReusable", "containsPersonalInfoData", "license"),
    *("quantities", "dataLink", "lon", "lat"),
]


def _csv_value(v: Any) -> Any:
    """A register value in CSV: booleans as ``true``/``false`` (as in the JSON), none empty."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return v


@dl_router.get("/v1/register", summary="Sensor register (JSON)", responses=JSON_200)
def register(request: Request) -> Response:
    def run() -> Response:
        od = _od(request)
        cat = od.catalog(_access(request, od))
        return _json({"value": od.register(cat, _base(request))})

    return _guard(run)


@dl_router.get(
    "/v1/register/summary",
    summary="The register per module type: how many, which hold personal data, which publish",
    responses=JSON_200,
)
def register_summary_route(request: Request) -> Response:
    def run() -> Response:
        od = _od(request)
        cat = od.catalog(_access(request, od))
        return _json(register_summary(od.register(cat, _base(request))))

    return _guard(run)


@dl_router.get("/v1/register.csv", summary="Sensor register (CSV)", responses=CSV_200)
def register_csv(request: Request) -> Response:
    def run() -> Response:
        import csv as csvmod
        import io

        od = _od(request)
        cat = od.catalog(_access(request, od))
        buf = io.StringIO()
        w = csvmod.writer(buf, lineterminator="\n")
        w.writerow(REGISTER_FIELDS)
        for e in od.register(cat, _base(request)):
            lon, lat = e["location"]["coordinates"]
            row = {**e, "lon": lon, "lat": lat, "quantities": ";".join(e["quantities"])}
            w.writerow([_csv_value(row[f]) for f in REGISTER_FIELDS])
        return Response(
            buf.getvalue(),
            media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="sensor-register.csv"'},
        )

    return _guard(run)


def public_openapi(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document cut down to the public paths."""
    full = app.openapi()
    doc = dict(full)
    doc["info"] = {
        "title": "Streetpole open data",
        "version": "1.1",
        "description": "Public, read-only: OGC SensorThings API 1.1 and downloads. "
        "No account needed.",
    }
    doc["paths"] = {
        p: v for p, v in full.get("paths", {}).items() if p.startswith(("/sta/", "/opendata"))
    }
    doc.pop("tags", None)
    return doc


@dl_router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request) -> Response:
    app: FastAPI = request.app
    cached = getattr(app.state, "opendata_openapi", None)
    if cached is None:
        cached = app.state.opendata_openapi = public_openapi(app)
    return _json(cached)


def install(app: FastAPI, settings: Settings) -> None:
    """Routes and the edge middleware (read-only, CORS, licence headers, rate limits)."""
    app.include_router(sta_router)
    app.include_router(dl_router)
    limits = app.state.opendata_limits = Limits(settings)
    app.add_middleware(OpenDataEdge, settings=settings, limits=limits)
