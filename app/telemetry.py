"""Prometheus metrics of the service: requests, latency, verdicts, the model serving.

One registry per app (so several apps in one process, as in the tests, do not clash).
With `--workers N` each worker process counts its own requests; scrape each, or run one
worker per container.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

disable_created_metrics()  # the *_created series only add noise here

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
KNOWN_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class Metrics:
    """The counters and histograms the middleware and the routes update."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "triage_http_requests",
            "HTTP requests by method, route template and status code",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "triage_http_request_duration_seconds",
            "time from the request's arrival to the end of its response, by route template",
            ("route",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.verdicts = Counter(
            "triage_verdicts", "verdicts given, by verdict and by what decided it", ("verdict", "source"), registry=self.registry
        )
        self.needs_review = Counter("triage_needs_review", "verdicts sent to review", registry=self.registry)
        self.feedback = Counter("triage_feedback", "feedback stored, by correct label", ("label",), registry=self.registry)
        self.model_info = Gauge("triage_model_info", "1 for the model version serving", ("version",), registry=self.registry)
        self.model_loaded = Gauge("triage_model_loaded", "1 when a verified model is loaded", registry=self.registry)
        self.reloads = Gauge(
            "triage_model_reloads", "model loads since start, by outcome (ok, refused)", ("outcome",), registry=self.registry
        )
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method if method in KNOWN_METHODS else "other", route, status)
        pair = self._children.get(key)
        if pair is None:
            pair = (self.requests.labels(key[0], route, str(status)), self.latency.labels(route))
            self._children[key] = pair
        pair[0].inc()
        pair[1].observe(seconds)

    def observe_verdict(self, verdict: str, source: str, needs_review: bool) -> None:
        self.verdicts.labels(verdict, source).inc()
        if needs_review:
            self.needs_review.inc()

    def set_model(self, version: str | None, reloads: dict[str, int]) -> None:
        """Refresh the model gauges (called at scrape time)."""
        self.model_info.clear()
        if version is not None:
            self.model_info.labels(version).set(1)
        self.model_loaded.set(1 if version is not None else 0)
        for outcome, n in reloads.items():
            self.reloads.labels(outcome).set(n)

    def render(self) -> bytes:
        return generate_latest(self.registry)
