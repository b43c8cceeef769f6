"""Prometheus metrics of the controller, in a registry per app (tests run several apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages_in = Counter(
            "streetpole_ingest_messages_total", "MQTT messages received", ["channel"], registry=r
        )
        self.points_stored = Counter(
            "streetpole_ingest_points_stored_total", "Readings newly stored", registry=r
        )
        self.points_deduplicated = Counter(
            "streetpole_ingest_points_deduplicated_total",
            "Readings already stored (resends)",
            registry=r,
        )
        self.batches_resent = Counter(
            "streetpole_ingest_batches_resent_total", "Measurement batches seen before", registry=r
        )
        self.dropped = Counter(
            "streetpole_ingest_dropped_total",
            "Messages refused, by reason (the offending field)",
            ["reason"],
            registry=r,
        )
        self.clock_ahead = Counter(
            "streetpole_ingest_clock_ahead_total",
            "Messages refused because their time is ahead of the controller's (per node: the "
            "clockAhead alarm's count and /api/ingest/stats)",
            registry=r,
        )
        self.queue_depth = Gauge(
            "streetpole_ingest_queue_depth", "Messages received, not yet stored", registry=r
        )
        self.write_latency = Histogram(
            "streetpole_ingest_write_seconds",
            "Time to store one ingest batch",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.connected_nodes = Gauge(
            "streetpole_nodes_online", "Nodes whose last state is online", registry=r
        )
        self.broker_connected = Gauge(
            "streetpole_ingest_broker_connected", "1 while ingest is connected", registry=r
        )
        # the API's admission to the registry (controller/api/admission.py), read when scraped
        self.api_in_flight = Gauge(
            "streetpole_api_requests_in_flight", "Requests holding a turn", registry=r
        )
        self.api_waiting = Gauge(
            "streetpole_api_requests_waiting", "Requests waiting for a turn", registry=r
        )
