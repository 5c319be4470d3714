"""Prometheus metrics, one registry per application (no process-global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.connections = Gauge(
            "koppi_ws_connections", "Open websocket connections", registry=self.registry
        )
        self.messages_accepted = Counter(
            "koppi_messages_accepted", "Envelopes durably stored", registry=self.registry
        )
        self.messages_delivered = Counter(
            "koppi_messages_delivered", "Envelopes delivered to connections", registry=self.registry
        )
        self.commit_latency = Histogram(
            "koppi_commit_latency_seconds",
            "Time from group-commit start to durable commit",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self.frames_rejected = Counter(
            "koppi_ws_frames_rejected",
            "Frames answered with an error",
            ["code"],
            registry=self.registry,
        )
