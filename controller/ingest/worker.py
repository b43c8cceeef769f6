"""The ingest worker: subscribe with QoS 1, store in batches, acknowledge after commit.

Acknowledging after commit: a PUBACK tells the broker a message is safe, so it goes out only once
the batch holding the message is committed (controller/ingest/subscriber.py leaves the
acknowledgement to us), in order, the PUBACKs of a batch in one write. A crash before the
acknowledgement makes the broker send them again (persistent session: fixed client id, clean
session off); the store's idempotent writes make the second copy harmless.

Backpressure comes from MQTT itself: while we are connected the broker sends at most
``max_inflight_messages`` unacknowledged QoS 1 messages and queues the rest (controller/broker.py
sizes both), so a slow database slows delivery and loses nothing. Not bounded by that window:
when this worker reconnects to its persistent session, mosquitto sends the whole queued backlog
at once, so the pending list can grow to ``max_queued_messages`` after a long outage of the
controller.

Receiving: the subscriber hands the PUBLISH packets of each read, as the framing's tuples, to
the pending list on the event loop's thread, and the flush loop is woken only when a batch is
full; it decodes and stores in a worker thread, then writes the batch's confirmations and
PUBACKs.

Decoding and storing a batch run one after the other in one worker thread: overlapping
them in two threads did not pay (docs/performance.md, "What was tried and did not pay").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from controller.ingest.confirm import confirmations
from controller.ingest.decode import Sorted, sort_messages
from controller.ingest.modules import ModuleIndex
from controller.ingest.subscriber import Publish, Session, SessionEnded, Subscriber
from controller.metrics import Metrics
from controller.mqtt_auth import process_identity
from controller.settings import Settings
from controller.store.base import TimeSeriesStore
from controller.store.ops import OpsStore
from protocols import mqtt_framing as mf
from protocols import topics

log = logging.getLogger("streetpole.ingest")

UP_CHANNELS = (topics.MEAS, topics.EVENT, topics.ACK)
# The shared subscription's group when several processes may ingest (IngestWorker.group)
SHARED_GROUP = "streetpole-ingest"


@dataclass
class IngestStats:
    messages: int = 0
    stored_points: int = 0
    duplicate_points: int = 0
    dead_letters: int = 0
    batches: int = 0
    confirmations: int = 0  # "stored" messages sent to nodes (controller/ingest/confirm.py)
    confirmation_bytes: int = 0  # their PUBLISH packets, headers included
    connects: int = 0
    last_error: str | None = None
    write_error: str | None = None  # the last failed store write, until one succeeds (readyz)
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    clock_ahead: dict[str, int] = field(default_factory=dict)  # messages refused, per pole/node


class IngestWorker:
    def __init__(
        self,
        settings: Settings,
        store: TimeSeriesStore,
        ops: OpsStore,
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.store = store
        self.ops = ops
        self.metrics = metrics
        self.stats = IngestStats()
        self.connected = asyncio.Event()
        # PUBLISH packets (type, flags, packet id, topic, payload), in arrival order
        self._pending: list[Publish] = []
        self._wakeup = asyncio.Event()
        self._online: dict[tuple[str, str], bool] = {}
        # Called in the worker thread after each committed batch (the fleet view: alarms,
        # command and config status). Its errors are logged, never lose or block ingest:
        # what it needs is in the ops store already.
        self.after_store: Callable[[Sorted], None] | None = None
        # Which quantities each node's modules measure (None: not checked, a bare worker)
        self.modules: ModuleIndex | None = None
        # Confirm to each node what was stored (controller/ingest/confirm.py); off only to
        # measure what the confirmations cost (tests/bench/bench_ingest.py)
        self.confirm = True

    def group(self) -> str | None:
        """The shared subscription's group when several processes may ingest: this
        controller's ingest children, or other controllers on a shared (PostgreSQL) registry.
        One process on SQLite subscribes plainly: mosquitto 2.0.11 does not restore a shared
        subscription from its persistence file, so after a broker restart the messages sent
        before ingest subscribes again would be dropped (docs/scaling.md), where a plain
        subscription keeps them in the session."""
        s = self.settings
        several = s.ingest_processes > 1 or s.registry_shared
        return s.mqtt_shared_group or (SHARED_GROUP if several else None)

    def filters(self) -> list[str]:
        group = self.group()
        prefix = f"$share/{group}/" if group else ""
        out = [prefix + topics.subscription(ch) for ch in UP_CHANNELS]
        # Retained state is not delivered through shared subscriptions; state updates are
        # idempotent, so every worker takes all of them.
        out.append(topics.subscription(topics.STATE))
        return out

    def stale_filters(self) -> list[str]:
        """What the persistent session may hold from a run with the other setting (one process,
        or several): the broker would go on delivering through it, so each message twice."""
        group = self.group()
        prefix = "" if group else f"$share/{SHARED_GROUP}/"
        return [prefix + topics.subscription(ch) for ch in UP_CHANNELS]

    def _session(self) -> Session:
        return session_of(self.settings)

    def _on_publish(self, packets: list[Publish]) -> None:
        """Called on the event-loop thread with the publishes of each read: keep them, no more."""
        pending = self._pending
        pending.extend(packets)
        if len(pending) >= self.settings.ingest_batch_max:
            self._wakeup.set()

    async def run(self) -> None:
        """Connect, ingest, and reconnect with backoff and jitter, until cancelled."""
        backoff = 0.2
        while True:
            try:
                sub = await Subscriber.connect(self._session(), self._on_publish)
                try:
                    await sub.unsubscribe(self.stale_filters())
                    await sub.subscribe([(f, 1) for f in self.filters()])
                    self.stats.connects += 1
                    self.connected.set()
                    self.metrics.broker_connected.set(1)
                    backoff = 0.2
                    await self._serve(sub)
                finally:
                    sub.close()
                    if sub.oversized:
                        log.warning("ingest skipped %d packets over the size limit", sub.oversized)
            except SessionEnded as e:
                self.stats.last_error = str(e)
                log.warning("ingest connection lost: %s", e)
            finally:
                self.connected.clear()
                self.metrics.broker_connected.set(0)
                self._pending.clear()  # unacknowledged: the broker sends them again
            await asyncio.sleep(backoff * (1 + random.random() / 2))
            backoff = min(backoff * 2, 15.0)

    async def _serve(self, sub: Subscriber) -> None:
        """Receive into the pending list while the flush loop stores and acknowledges; a failed
        write ends the connection, so the broker sends the unacknowledged messages again."""
        keeper = asyncio.create_task(sub.run())
        flusher = asyncio.create_task(self._flush_loop(sub))
        try:
            done, _ = await asyncio.wait({keeper, flusher}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                error = task.exception()
                if isinstance(error, SessionEnded):
                    raise error
                if error is not None:
                    raise SessionEnded(f"ingest stopped: {error!r}") from error
        finally:
            for task in (keeper, flusher):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _flush_loop(self, sub: Subscriber) -> None:
        flush = self.settings.ingest_flush_ms / 1000
        batch_max = self.settings.ingest_batch_max
        while True:
            # A full batch waiting (a backlog arrived faster than it is stored): no pause, the
            # wakeup is set only when the list grows past a batch, which it may not do again.
            if len(self._pending) < batch_max:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancel
                # that lands as the wait ends, and this loop would outlive its shutdown
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(flush):
                        await self._wakeup.wait()
            self._wakeup.clear()
            if not self._pending:
                continue
            take = self._pending[:batch_max]
            del self._pending[: len(take)]
            self.metrics.queue_depth.set(len(self._pending) + len(take))
            retained = {i for i, m in enumerate(take) if m[1] & 1}
            confirm = await asyncio.to_thread(self._store, [(m[3], m[4]) for m in take], retained)
            # the confirmations before the PUBACKs, in one write: a controller that dies between
            # the two gets the messages again, and confirms them again
            sub.ack([m[2] for m in take if m[2]], confirm)
            self.metrics.queue_depth.set(len(self._pending))

    def _store(self, messages: list[tuple[str, bytes]], retained: set[int]) -> bytes:
        """Decode and store one batch (runs in a worker thread); return the PUBLISH packets
        of the confirmations to the nodes."""
        started = time.perf_counter()
        if self.modules is not None:
            self.modules.refresh()
        s = sort_messages(
            messages,
            retained=retained,
            now=time.time(),
            max_ahead_s=self.settings.ingest_max_clock_ahead_s,
            modules=self.modules,
        )
        try:
            self.ops.write(s.states, s.events, s.acks, s.dead)
            result = self.store.write(s.batches) if s.batches else None
        except Exception as e:
            self.stats.write_error = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise
        self.stats.write_error = None
        confirm = b""
        sent = 0
        if self.confirm and (s.batches or s.dead):
            try:
                packets = [mf.send_publish(t, p) for t, p in confirmations(s)]
                confirm = b"".join(packets)
                sent = len(packets)
            except Exception:  # the nodes send again after a reconnect; ingest goes on
                log.exception("confirmations to the nodes failed")
        m = self.metrics
        m.write_latency.observe(time.perf_counter() - started)
        for ch, n in s.channels.items():
            m.messages_in.labels(ch).inc(n)
        for d in s.dead:
            m.dropped.labels(d.field).inc()
            self.stats.dropped_by_reason[d.field] = self.stats.dropped_by_reason.get(d.field, 0) + 1
        for pole, node, ahead in s.clock_ahead:
            m.clock_ahead.inc()
            key = f"{pole}/{node}"
            self.stats.clock_ahead[key] = self.stats.clock_ahead.get(key, 0) + 1
            log.warning("clock of %s is %d s ahead: message refused", key, ahead)
        for pole, node, state in s.states:
            self._online[(pole, node)] = state["status"] == "online"
        m.connected_nodes.set(sum(self._online.values()))
        self.stats.messages += len(messages)
        self.stats.dead_letters += len(s.dead)
        self.stats.batches += 1
        if result is not None:
            m.points_stored.inc(result.stored)
            m.points_deduplicated.inc(result.duplicates)
            m.batches_resent.inc(result.batches_resent)
            self.stats.stored_points += result.stored
            self.stats.duplicate_points += result.duplicates
        self.stats.confirmations += sent
        self.stats.confirmation_bytes += len(confirm)
        if self.after_store is not None:
            try:
                self.after_store(s)
            except Exception:
                log.exception("fleet update after ingest failed")
        return confirm


def session_of(s: Settings, part: str = "", clean: bool = False) -> Session:
    """The broker session of the controller's ingest process ``part`` ("" its own, "1", ... its
    children: the identity controller/ingest/children.py gives them)."""
    username, client_id = process_identity(s.mqtt_username, s.mqtt_client_id, part)
    return Session(
        s.mqtt_host,
        s.mqtt_port,
        client_id,
        username=username,
        password=s.mqtt_password,
        # verifies the broker's certificate against the default CAs, and its name
        tls=ssl.create_default_context() if s.mqtt_tls else None,
        keepalive=30,
        timeout=10,
        clean=clean,
    )


async def leave_group(s: Settings, first: int = 0) -> list[str]:
    """Take the ingest sessions of processes ``first`` to ``ingest_processes - 1`` out of the
    broker, with what they hold: each is connected to with a clean session, which the broker
    takes as the end of the old one. A session nobody takes up again stays a member of the
    shared group, and mosquitto goes on handing it its turn of the stream until it expires
    (docs/scaling.md). Run it with the controller (or those processes) stopped. Returns the
    client ids."""
    left = []
    for i in range(first, s.ingest_processes):
        session = session_of(s, str(i) if i else "", clean=True)
        sub = await Subscriber.connect(session, lambda _packets: None)
        sub.close()  # a clean session ends with its connection
        left.append(session.client_id)
    return left
