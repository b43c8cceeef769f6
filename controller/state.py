"""What the running controller holds, created in the app's lifespan and handed to routes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from controller.api.admission import Admission
from controller.dispatch import Dispatcher
from controller.fleet import Heard
from controller.health import Readiness
from controller.ingest.worker import IngestWorker
from controller.leadership import Leadership
from controller.login_guard import LoginGuard
from controller.metrics import Metrics
from controller.mqtt_sync import BrokerAccounts
from controller.registry.db import Registry
from controller.registry.models import OutboxMessage
from controller.settings import Settings
from controller.store.base import TimeSeriesStore
from controller.store.ops import OpsStore


@dataclass
class AppState:
    settings: Settings
    store: TimeSeriesStore
    ops: OpsStore
    metrics: Metrics
    registry: Registry
    accounts: BrokerAccounts
    dispatcher: Dispatcher | None = None
    leadership: Leadership = field(init=False)
    ingest: IngestWorker | None = None
    heard: Heard = field(default_factory=Heard)
    readiness: Readiness | None = None
    fleet_rounds: int = 0  # rounds of the fleet loop done (app._fleet_loop): tests wait for one
    admission: Admission = field(init=False)
    login_guard: LoginGuard = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.admission = Admission(s.api_concurrency, s.api_queue, s.api_queue_wait_s)
        self.leadership = Leadership(self.registry.url)
        gate, m = self.admission, self.metrics
        m.api_in_flight.set_function(lambda: gate.in_flight)
        m.api_waiting.set_function(lambda: gate.waiting)
        self.login_guard = LoginGuard(
            s.login_free_failures_account, s.login_free_failures_ip, s.login_max_backoff_s
        )

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A registry transaction whose outgoing MQTT messages are written to the outbox in the
        same commit; the leading controller's dispatcher sends them (controller/dispatch.py)."""
        with self.registry.session() as db:
            yield db
            box = db.info.pop("outbox", [])
            db.add_all(OutboxMessage(topic=t, payload=m, retain=r) for t, m, r in box)
        if box and self.dispatcher is not None:
            self.dispatcher.wake()
