"""Prometheus metrics, on a registry of the app's own (several apps may live in one test)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "tongban_http_requests", "HTTP requests", ["method", "status"], registry=r
        )
        self.logins = Counter("tongban_logins", "Login attempts", ["result"], registry=r)
        self.sockets = Gauge(
            "tongban_socketio_connections", "Open Socket.IO connections", registry=r
        )
        self.calls = Counter("tongban_calls", "Calls by how they ended", ["outcome"], registry=r)
        self.calls_active = Gauge("tongban_calls_active", "Calls ringing or answered", registry=r)
        self.ring_to_answer = Histogram(
            "tongban_ring_to_answer_seconds",
            "Time from request to answer",
            buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300),
            registry=r,
        )
        self.sms = Counter("tongban_sms", "SMS outbox results", ["result"], registry=r)
        self.sms_attention = Gauge(
            "tongban_sms_needing_attention", "SMS the provider refused (isv.*)", registry=r
        )
        self.socket_errors = Counter(
            "tongban_socketio_errors",
            "Socket.IO events answered with an error",
            ["code"],
            registry=r,
        )
