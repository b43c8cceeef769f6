"""What the running controller holds, created in the app's lifespan and handed to routes."""

from __future__ import annotations

from dataclasses import dataclass

from controller.ingest.worker import IngestWorker
from controller.metrics import Metrics
from controller.settings import Settings
from controller.store.base import TimeSeriesStore
from controller.store.ops import OpsStore


@dataclass
class AppState:
    settings: Settings
    store: TimeSeriesStore
    ops: OpsStore
    metrics: Metrics
    ingest: IngestWorker | None = None
