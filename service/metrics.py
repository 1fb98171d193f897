"""Prometheus metrics of one app: requests by route and status, latency histograms, encode vs search time.

Each app has its own registry (tests build many apps in one process). Under ``lsr serve --workers N`` every worker
writes its values to files in ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` sums all workers, whichever answers.
"""

from __future__ import annotations

import os
import time

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram,
                               disable_created_metrics, generate_latest)

disable_created_metrics()  # the *_created series double the output and say nothing a scraper needs

_LATENCY = (.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("lsr_http_requests", "HTTP requests answered", ["method", "route", "status"],
                                registry=r)
        self.latency = Histogram("lsr_http_request_duration_seconds", "HTTP request latency", ["method", "route"],
                                 buckets=_LATENCY, registry=r)
        self.in_flight = Gauge("lsr_http_requests_in_flight", "HTTP requests being served", registry=r,
                               multiprocess_mode="livesum")
        self.encode = Histogram("lsr_encode_seconds", "time to encode one micro-batch of query texts",
                                buckets=_LATENCY, registry=r)
        self.encode_batch = Histogram("lsr_encode_batch_size", "query texts per encoder call",
                                      buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r)
        self.search = Histogram("lsr_search_seconds", "index search time of one query", ["method"],
                                buckets=_LATENCY, registry=r)
        self.documents = Counter("lsr_documents_written", "documents added, replaced or deleted", ["op"], registry=r)
        self.active = 0  # requests in flight in this process (the micro-batcher reads it)

    def observe_encode(self, n: int, seconds: float) -> None:
        self.encode.observe(seconds)
        self.encode_batch.observe(n)

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)
            return generate_latest(merged)
        return generate_latest(self.registry)


class Instrument:
    """ASGI middleware: counts and times every HTTP request under its route template (``/documents/{doc_id}``,
    never the raw path, so label values stay few)."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        m, start, status = self.metrics, time.perf_counter(), 500

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        m.active += 1
        m.in_flight.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            m.active -= 1
            m.in_flight.dec()
            route = getattr(scope.get("route"), "path", "unmatched")
            m.requests.labels(scope["method"], route, str(status)).inc()
            m.latency.labels(scope["method"], route).observe(time.perf_counter() - start)
