"""What the simulated people feel, counted: request latency, delivery time, failures.

Every measurement goes two ways: into Prometheus metrics (histograms a
dashboard can aggregate across load generators, served on /metrics), and into
log-spaced buckets from which the report takes percentiles, both over the last
report interval and over the whole run.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

from prometheus_client import CollectorRegistry, Gauge, Histogram, ProcessCollector
from prometheus_client import Counter as PromCounter

QUANTILES = (0.5, 0.95, 0.99)
# Prometheus buckets: a chat request takes milliseconds when healthy and seconds when not.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Kind(StrEnum):
    FIND = "find"  # reading the page (or the api's root) to find the api
    PAGE = "page"  # a browser opening the chat page and its script (when given the page's URL)
    LOAD = "load"  # opening the chat: the latest page of messages
    POST = "post"  # sending a message
    STATS = "stats"  # sending a /stats command, answered by crawler-bot before the 201
    HISTORY = "history"  # scrolling back: an older page of messages
    STREAM = "stream"  # one stream connection, counted when it ends (closed by us = ok)


class Latencies:
    """Durations in buckets 1 % wide: percentiles within 1 % in constant memory, however long the run."""

    RATIO = 1.01
    FLOOR = 1e-5

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.max = 0.0
        self._buckets: Counter[int] = Counter()

    def add(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        self.max = max(self.max, seconds)
        self._buckets[max(0, math.ceil(math.log(max(seconds, self.FLOOR) / self.FLOOR, self.RATIO)))] += 1

    def quantile(self, q: float) -> float | None:
        """The q-quantile, rounded up to its bucket's upper edge (never beyond the maximum seen)."""
        if not self.count:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for index in sorted(self._buckets):
            seen += self._buckets[index]
            if seen >= rank:
                return min(self.FLOOR * self.RATIO**index, self.max)
        return self.max

    def as_json(self) -> dict[str, float | int | None]:
        def ms(value: float | None) -> float | None:
            return None if value is None else round(value * 1000, 2)

        return {
            "count": self.count,
            **{f"p{round(q * 100)}_ms": ms(self.quantile(q)) for q in QUANTILES},
            "max_ms": ms(self.max if self.count else None),
            "mean_ms": ms(self.total / self.count if self.count else None),
        }


@dataclass
class Tally:
    """Counts and latencies over one stretch of time (a report interval, or the whole run)."""

    requests: Counter[Kind] = field(default_factory=Counter)
    failures: Counter[tuple[Kind, str]] = field(default_factory=Counter)
    latency: dict[Kind, Latencies] = field(default_factory=lambda: {kind: Latencies() for kind in Kind})
    delivery: Latencies = field(default_factory=Latencies)
    missed: int = 0

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def error_rate(self) -> float:
        total = sum(self.requests.values())
        return self.failed / total if total else 0.0

    @property
    def missed_rate(self) -> float:
        expected = self.delivery.count + self.missed
        return self.missed / expected if expected else 0.0


class Measurements:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        # The load generator's own CPU and memory: a saturated generator measures itself, not the chat.
        ProcessCollector(registry=self.registry)
        self.total = Tally()
        self.window = Tally()
        self._requests = PromCounter(
            "loadgen_requests",
            "Requests the simulated people made, by kind",
            ["kind"],
            registry=self.registry,
        )
        self._failures = PromCounter(
            "loadgen_request_failures",
            "Requests that failed, by kind and reason",
            ["kind", "reason"],
            registry=self.registry,
        )
        self._seconds = Histogram(
            "loadgen_request_duration_seconds",
            "How long successful requests took, by kind",
            ["kind"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self._delivery = Histogram(
            "loadgen_delivery_seconds",
            "From sending a message until it appears on another person's stream",
            buckets=BUCKETS,
            registry=self.registry,
        )
        self._missed = PromCounter(
            "loadgen_deliveries_missed",
            "Messages that never reached a person whose stream was open",
            registry=self.registry,
        )
        self.people = Gauge("loadgen_people", "Simulated people in the chat", registry=self.registry)
        self.open_streams = 0
        self._streams_open = Gauge(
            "loadgen_streams_open", "Streams receiving messages now", registry=self.registry
        )
        self._window_quantiles = Gauge(
            "loadgen_window_seconds",
            "Percentiles over the last report interval",
            ["measure", "quantile"],
            registry=self.registry,
        )
        self._window_error_rate = Gauge(
            "loadgen_window_error_ratio",
            "Failed requests / requests over the last report interval",
            registry=self.registry,
        )

    def stream_opened(self) -> None:
        self.open_streams += 1
        self._streams_open.set(self.open_streams)

    def stream_closed(self) -> None:
        self.open_streams -= 1
        self._streams_open.set(self.open_streams)

    def _tallies(self) -> tuple[Tally, Tally]:
        return self.total, self.window

    def succeeded(self, kind: Kind, seconds: float) -> None:
        self._requests.labels(kind.value).inc()
        self._seconds.labels(kind.value).observe(seconds)
        for tally in self._tallies():
            tally.requests[kind] += 1
            tally.latency[kind].add(seconds)

    def failed(self, kind: Kind, reason: str) -> None:
        self._requests.labels(kind.value).inc()
        self._failures.labels(kind.value, reason).inc()
        for tally in self._tallies():
            tally.requests[kind] += 1
            tally.failures[(kind, reason)] += 1

    def delivered(self, seconds: float) -> None:
        self._delivery.observe(seconds)
        for tally in self._tallies():
            tally.delivery.add(seconds)

    def missed(self, count: int = 1) -> None:
        self._missed.inc(count)
        for tally in self._tallies():
            tally.missed += count

    def take_window(self) -> Tally:
        """The interval just ended (also published as gauges); a new one starts."""
        window, self.window = self.window, Tally()
        for name, latencies in (("post", window.latency[Kind.POST]), ("delivery", window.delivery)):
            for q in QUANTILES:
                value = latencies.quantile(q)
                self._window_quantiles.labels(name, str(q)).set(math.nan if value is None else value)
        self._window_error_rate.set(window.error_rate)
        return window
