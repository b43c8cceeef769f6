"""InfluxDB backend, through influxdb-client (InfluxDB 2.x API): an export for Grafana users.

It stores what ingest hands it (line protocol), and answers latest values and aggregates, but
not the open-data API's Observations, CSV and archives (501, saying what to use instead): a
city past one SQLite file keeps its time series in PostgreSQL (controller/store/postgres.py).

Points: measurement ``reading``, tags ``pole``, ``node``, ``src``, ``q`` (low cardinality: one
series per stream), fields ``v`` and, when present, ``dur`` and ``flags``; second precision.
InfluxDB keeps one point per series and timestamp, so a resent reading overwrites itself with the
same value: writes are idempotent, but the store cannot tell how many were duplicates (it reports
0). Writes are synchronous, gzip-compressed, in chunks of ``chunk`` points, with retries and
backoff, so ingest acknowledges only what InfluxDB accepted. Queries are Flux.

What CI verifies: the write path, against VictoriaMetrics (it accepts the InfluxDB v2 write API).
The Flux queries run only against a real InfluxDB 2 (set STREETPOLE_INFLUXDB_URL for the tests).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write.point import Point as IPoint
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from urllib3.util.retry import Retry

from controller.store.base import (
    WINDOW_SECONDS,
    Aggregate,
    Batch,
    ObservationPage,
    ObservationQuery,
    Point,
    StreamKey,
    TimeSeriesStore,
    Window,
    WriteResult,
)

MEASUREMENT = "reading"
NO_OPEN_DATA = (
    "SensorThings Observations, CSV and archives are not served from InfluxDB, which this"
    " controller writes to as an export (for Grafana): keep the time series in SQLite"
    " (STREETPOLE_STORE=sqlite, the default) or, past one machine, in PostgreSQL"
    " (STREETPOLE_STORE=postgresql and STREETPOLE_STORE_URL)"
)


def _escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


class InfluxStore(TimeSeriesStore):
    def __init__(self, url: str, token: str, org: str, bucket: str, chunk: int = 5000) -> None:
        self.bucket = bucket
        self.org = org
        self.chunk = chunk
        retries = Retry(total=5, backoff_factor=0.2, status_forcelist=(429, 500, 502, 503, 504))
        self._client = InfluxDBClient(
            url=url, token=token, org=org, enable_gzip=True, retries=retries, timeout=30_000
        )
        self._write = self._client.write_api(write_options=SYNCHRONOUS)

    @staticmethod
    def to_points(batches: Iterable[Batch]) -> list[IPoint]:
        points = []
        for b in batches:
            for r in b.readings:
                p = (
                    IPoint(MEASUREMENT)
                    .tag("pole", b.pole)
                    .tag("node", b.node)
                    .tag("src", r.get("src") or "")
                    .tag("q", r["q"])
                    .field("v", float(r["v"]))
                    .time(int(r["ts"]), WritePrecision.S)
                )
                if r.get("dur") is not None:
                    p = p.field("dur", int(r["dur"]))
                if r.get("flags"):
                    p = p.field("flags", ",".join(r["flags"]))
                points.append(p)
        return points

    def write(self, batches: Iterable[Batch]) -> WriteResult:
        points = self.to_points(batches)
        for i in range(0, len(points), self.chunk):
            chunk = points[i : i + self.chunk]
            self._write.write(self.bucket, self.org, chunk, WritePrecision.S)  # type: ignore[arg-type]
        return WriteResult(points=len(points), stored=len(points))

    # ---- queries (Flux) -------------------------------------------------------------------

    def _flux(self, body: str) -> list[Any]:
        tables = self._client.query_api().query(f'from(bucket: "{_escape(self.bucket)}")' + body)
        return [rec for table in tables for rec in table.records]

    @staticmethod
    def _filter(stream: StreamKey) -> str:
        return (
            f' |> filter(fn: (r) => r._measurement == "{MEASUREMENT}" and '
            f'r.pole == "{_escape(stream.pole)}" and r.node == "{_escape(stream.node)}" and '
            f'r.src == "{_escape(stream.src)}" and r.q == "{_escape(stream.q)}" and '
            f'r._field == "v")'
        )

    def streams(self) -> list[StreamKey]:
        recs = self._flux(
            f' |> range(start: 0) |> filter(fn: (r) => r._measurement == "{MEASUREMENT}"'
            ' and r._field == "v") |> last() |> keep(columns: ["pole", "node", "src", "q"])'
        )
        return sorted({StreamKey(r["pole"], r["node"], r["src"], r["q"]) for r in recs})

    def query(
        self, stream: StreamKey, start: int, end: int, limit: int = 10_000, offset: int = 0
    ) -> list[Point]:
        recs = self._flux(
            f" |> range(start: {start}, stop: {end})"
            + self._filter(stream)
            + f' |> sort(columns: ["_time"]) |> limit(n: {limit}, offset: {offset})'
        )
        return [Point(int(r.get_time().timestamp()), float(r.get_value())) for r in recs]

    def latest(self, streams: Iterable[StreamKey] | None = None) -> dict[StreamKey, Point]:
        recs = self._flux(
            f' |> range(start: 0) |> filter(fn: (r) => r._measurement == "{MEASUREMENT}"'
            ' and r._field == "v") |> last()'
        )
        out = {
            StreamKey(r["pole"], r["node"], r["src"], r["q"]): Point(
                int(r.get_time().timestamp()), float(r.get_value())
            )
            for r in recs
        }
        if streams is not None:
            wanted = set(streams)
            out = {k: v for k, v in out.items() if k in wanted}
        return out

    def aggregate(self, stream: StreamKey, start: int, end: int, window: Window) -> list[Aggregate]:
        width = WINDOW_SECONDS[window]
        base = f" |> range(start: {start - start % width}, stop: {end})" + self._filter(stream)
        out: dict[int, dict[str, float]] = {}
        for fn in ("count", "mean", "min", "max"):
            recs = self._flux(
                base + f" |> aggregateWindow(every: {width}s, fn: {fn}, createEmpty: false,"
                ' timeSrc: "_start")'
            )
            for r in recs:
                out.setdefault(int(r.get_time().timestamp()), {})[fn] = float(r.get_value())
        return [
            Aggregate(b, int(v["count"]), v["mean"], v["min"], v["max"])
            for b, v in sorted(out.items())
            if v.get("count")
        ]

    def observations(self, q: ObservationQuery) -> ObservationPage:
        raise NotImplementedError(NO_OPEN_DATA)

    def close(self) -> None:
        self._client.close()
