"""Prometheus metrics of one HTTP app: latency by route, requests and errors by route, served versions.

Each app gets its own CollectorRegistry, so several apps in one process (tests) never collide on names.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Scoring takes about a millisecond in process; the buckets resolve that and the tail up to seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Telemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "shopscore_request_seconds",
            "HTTP request latency by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "shopscore_requests",
            "HTTP requests by route template and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "shopscore_errors",
            "HTTP responses with status >= 400 by route template and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.served_version = Gauge(
            "shopscore_served_version",
            "Model version that last answered requests for a model and alias.",
            ["model", "alias"],
            registry=self.registry,
        )
        self.scores = Counter(
            "shopscore_scores",
            "Users scored by model, alias and version.",
            ["model", "alias", "version"],
            registry=self.registry,
        )

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.latency.labels(route).observe(seconds)
        self.requests.labels(route, str(status)).inc()
        if status >= 400:
            self.errors.labels(route, str(status)).inc()

    def served(self, model: str, alias: str, version: int, users: int) -> None:
        self.served_version.labels(model, alias).set(version)
        self.scores.labels(model, alias, str(version)).inc(users)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI (cheaper than BaseHTTPMiddleware): latency, requests and errors by route template."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # The template (/v1/score/{user_id}), not the path, so label cardinality stays bounded.
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.telemetry.observe(route, status, time.perf_counter() - started)
