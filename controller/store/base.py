"""The time-series store interface, the same for every backend (SQLite, PostgreSQL, InfluxDB).

A stream is what one module of one node measures of one quantity: (pole, node, src, q). A
reading is stored once per (stream, ts): a resent batch changes nothing. Backends are synchronous
(SQLite and influxdb-client are); the ingest runs them in a worker thread.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from controller.opendata.query import Expr

Window = Literal["minute", "hour", "day"]
WINDOW_SECONDS: dict[str, int] = {"minute": 60, "hour": 3600, "day": 86400}
# How long a stored batch's key (pole, node, boot, seq) is kept, for dropping a resent batch
# whole. A node resends only what it has no confirmation for, within minutes to an hour of the
# first copy; a later copy is still stored once, point by point (the contract's
# test_batch_keys_go_after_a_day...), only at a higher cost. Kept for the raw retention
# instead, the keys were 8 of PostgreSQL's 28 bytes a reading.
BATCH_KEYS_S = 86400


@dataclass(frozen=True, order=True)
class StreamKey:
    pole: str
    node: str
    src: str  # "" when the reading named no module
    q: str


@dataclass(frozen=True)
class Point:
    ts: int
    v: float
    dur: int | None = None
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Aggregate:
    bucket: int  # start of the window, UTC epoch seconds
    count: int
    mean: float
    min: float
    max: float


@dataclass
class Batch:
    """One decoded measurement message, as ingest hands it to a store."""

    pole: str
    node: str
    boot: int
    seq: int
    readings: Sequence[dict[str, Any]]


@dataclass
class WriteResult:
    points: int = 0  # points offered
    stored: int = 0  # newly stored
    duplicates: int = 0  # already there (a resend)
    batches_resent: int = 0  # whole batches seen before
    extra: dict[str, int] = field(default_factory=dict)


class QueryTooExpensive(RuntimeError):
    """A read ran past its time budget and was stopped (the caller should narrow it)."""


@dataclass(frozen=True)
class StreamInfo:
    """A stream's stable integer id and the times of its first and last point."""

    id: int
    first: int | None
    last: int | None


@dataclass(frozen=True)
class ObservationQuery:
    """A page of points of several streams, for the open-data API (SensorThings Observations).

    ``filter`` and ``orderby`` are the neutral trees of ``$filter`` and ``$orderby`` over an
    Observation's own properties (``controller.opendata.sql.bind`` has resolved its navigation
    and ``now()``); each store renders them in its SQL (``controller.opendata.sql
    .observation_sql`` with its dialect), and every order ends with (stream, ts). A backend that
    cannot run them raises NotImplementedError. Streams in ``counted`` are published only as
    sums per ``count_window`` seconds (a window is one row: ts = its end, dur = its width), and
    only windows ending at or before ``until``.
    """

    streams: tuple[int, ...]
    counted: tuple[int, ...] = ()
    count_window: int = 900
    until: int = 2**31
    filter: Expr | None = None
    orderby: tuple[tuple[Expr, bool], ...] = ()  # (expression, descending)
    limit: int = 100
    offset: int = 0
    count: bool = False
    budget_ms: int = 5000


@dataclass
class ObservationPage:
    rows: list[tuple[int, int, float, int | None, str | None]]  # stream, ts, v, dur, flags
    total: int | None = None


class TimeSeriesStore(ABC):
    @abstractmethod
    def write(self, batches: Iterable[Batch]) -> WriteResult:
        """Store the batches' readings idempotently, durably, in one go."""

    @abstractmethod
    def streams(self) -> list[StreamKey]: ...

    @abstractmethod
    def query(
        self, stream: StreamKey, start: int, end: int, limit: int = 10_000, offset: int = 0
    ) -> list[Point]:
        """Points with start <= ts < end, oldest first."""

    @abstractmethod
    def latest(self, streams: Iterable[StreamKey] | None = None) -> dict[StreamKey, Point]:
        """The newest point of every stream (or of the given ones)."""

    @abstractmethod
    def aggregate(self, stream: StreamKey, start: int, end: int, window: Window) -> list[Aggregate]:
        """count/mean/min/max per UTC window with start <= bucket < end, oldest first."""

    def stream_index(self) -> dict[StreamKey, StreamInfo]:
        """Every stream with a stable integer id (default: its rank, which a new stream can
        shift; backends with real ids override this)."""
        last = self.latest()
        return {
            k: StreamInfo(i + 1, None, last[k].ts if k in last else None)
            for i, k in enumerate(sorted(self.streams()))
        }

    def latest_by_id(self) -> dict[int, Point]:
        """The newest point of every stream by its ``stream_index`` id (what the open data's
        latest values read: backends with real ids answer from their table of latest points,
        without building a StreamKey per stream)."""
        last = self.latest()
        return {info.id: last[k] for k, info in self.stream_index().items() if k in last}

    def observations(self, q: ObservationQuery) -> ObservationPage:
        """Filtered, ordered, paged points of several streams (see ObservationQuery)."""
        raise NotImplementedError("this store cannot run SensorThings queries")

    def apply_retention(self, now: int) -> dict[str, int]:
        """Roll up and delete what is past its retention; returns counts. Default: nothing."""
        return {}

    def close(self) -> None:  # noqa: B027 (optional hook)
        pass
