"""Prometheus metrics: requests and latency per route, and figures of the index.

With several workers (``serve()`` sets ``PROMETHEUS_MULTIPROC_DIR``),
prometheus_client's multiprocess mode adds up the counters and histograms of
every worker, whichever worker answers the scrape. The index figures
(trips, refresh lag, ...) are read from the answering worker's backend at
scrape time; every worker follows the same store, so they agree within a
refresh interval.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Iterator, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Metrics", "MetricsMiddleware", "CONTENT_TYPE_LATEST"]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
StatsSource = Callable[[], Mapping[str, Any] | None]


class Metrics:
    """The metrics of one app: request counters and histograms, and the index figures."""

    def __init__(self, index_stats: StatsSource) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tripsearch_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "tripsearch_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._index_registry = CollectorRegistry()
        self._index_registry.register(_IndexCollector(index_stats))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in _METHODS else "other"
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def exposition(self) -> bytes:
        """Return every metric in the Prometheus text format."""
        if self.multiprocess:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
        else:
            registry = self.registry
        return generate_latest(registry) + generate_latest(self._index_registry)


class _IndexCollector(Collector):
    """Gauges read from the backend's ``stats()`` when scraped."""

    def __init__(self, stats: StatsSource) -> None:
        self._stats = stats

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        if stats is None:
            yield GaugeMetricFamily("tripsearch_index_loaded", "1 when this worker's index is loaded.", value=0)
            return
        yield GaugeMetricFamily("tripsearch_index_loaded", "1 when this worker's index is loaded.", value=1)
        figures = (
            ("trips", "tripsearch_index_trips", "Trips in the index."),
            ("seq", "tripsearch_index_seq", "Last change of the store applied to the index."),
            ("array_bytes", "tripsearch_index_bytes", "Size of the index arrays, in bytes (embedded: the mapped segment, shared by the workers, plus this worker's delta)."),
            ("refresh_lag_s", "tripsearch_index_refresh_lag_seconds", "Seconds since this worker last refreshed its index."),
            ("refresh_interval_s", "tripsearch_index_refresh_interval_seconds", "Seconds between refreshes."),
        )
        for key, name, documentation in figures:
            value = stats.get(key)
            if isinstance(value, (int, float)):
                yield GaugeMetricFamily(name, documentation, value=float(value))


class MetricsMiddleware:
    """Count and time every HTTP request by its route template (``/v1/trips/{trip_id}``, never the raw path)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = scope.get("route")
            # Unmatched paths share one label: raw paths would let any client grow the series without bound.
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(scope["method"], template, status, time.perf_counter() - started)
