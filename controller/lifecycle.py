"""What a controller process opens at start and closes at the end: the stores, the registry and
the state around them (``opened``), and the ingest worker with its fleet update
(``ingest_worker``). The app's lifespan (controller/app.py) and each ingest child
(controller/ingest/children.py) start from here, so the two cannot drift apart."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from controller import fleet
from controller.datadir import make_private
from controller.ingest.decode import Sorted
from controller.ingest.modules import ModuleIndex
from controller.ingest.worker import IngestWorker
from controller.metrics import Metrics
from controller.mqtt_sync import BrokerAccounts
from controller.registry.db import Registry
from controller.settings import Settings
from controller.state import AppState
from controller.store import open_store
from controller.store.ops import OpsStore


@contextmanager
def opened(settings: Settings) -> Iterator[AppState]:
    """The process's state, with every file it opens in the data folder made private; closed
    (stores, registry, the broker accounts' writer) when the block ends."""
    store = open_store(settings)
    ops = OpsStore(settings.data_dir / "ops.db", settings.dead_letter_max)
    reg = Registry(settings.registry_url)
    make_private(settings.data_dir)
    state = AppState(settings, store, ops, Metrics(), reg, BrokerAccounts(settings, reg))
    try:
        yield state
    finally:
        state.accounts.close()
        store.close()
        ops.close()
        reg.close()


def ingest_worker(state: AppState) -> IngestWorker:
    """The ingest worker, with the fleet update after each stored batch."""
    worker = IngestWorker(state.settings, state.store, state.ops, state.metrics)
    worker.after_store = lambda s: _after_ingest(state, s)
    worker.modules = ModuleIndex(state.registry, state.settings.ingest_modules_refresh_s)
    return worker


def _after_ingest(state: AppState, s: Sorted) -> None:
    """Runs in the ingest thread after each committed batch; the registry is touched only when
    something changes (acks, states, events, a node not yet known to be online)."""
    heard = state.heard
    if not (s.acks or s.states or s.events or s.clock_ahead):
        now = time.time()
        with heard.lock:
            new = any(heard.needs_lookup((b.pole, b.node), now) for b in s.batches)
        if not new:
            with heard.lock:
                for b in s.batches:
                    heard.last_seen[(b.pole, b.node)] = now
            return
    state.registry.retrying(lambda db: fleet.apply_ingest(db, s, heard))
