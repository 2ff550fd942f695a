"""Prometheus metrics: one registry per process, served at ``GET /metrics``.

``ProcessMetrics`` is made once per process by ``roles.build_app`` and holds the
registry, the request-duration histogram every role has, and the metrics of the
parts the role runs (``ApiMetrics``, ``CrawlerMetrics``): a web process exports no
crawler metrics, so an alert on the crawler's last success never fires for it.
Parts built on their own (tests) get a registry of their own, so nothing is shared
between tests through module state.

Requests are observed by the access logger (``server.py``) when their response is
done: once each, with no middleware, into a histogram counted on the event loop's
thread (``loop_histogram.py``). The route label is the route's path within
its part (``/messages``, ``/{name}``), the same whether the api runs alone or
under ``all`` at ``/api/``; a path no route matches is counted as ``unmatched``.
The counters count what this process did since it started (Prometheus' ``rate()``
takes a restart's reset in its stride); docs/OPERATIONS.md says what each means.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.web_request import BaseRequest
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
)
from prometheus_client.exposition import choose_encoder

from .loop_histogram import HistogramSeries, LoopHistogram

METRICS_PATH = "/metrics"
# A chat request takes about a millisecond when healthy, seconds when not; streams
# and /stats downloads last longer than any bucket and land in +Inf.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
UNMATCHED_ROUTE = "unmatched"
# Methods any client may invent: anything else shares one label, so the series stay few.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"


class ApiMetrics:
    """What the api part counts: messages committed, streams open."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry or CollectorRegistry()
        self.messages_stored = Counter(
            "synergychat_messages_stored",
            "Messages committed to the message database by this process (the bot's replies included).",
            registry=registry,
        )
        self.stream_clients = Gauge(
            "synergychat_stream_clients",
            "Open live streams (GET /messages/stream).",
            registry=registry,
        )


class CrawlerMetrics:
    """What the crawler part counts: books counted and skipped, catalogue faults, progress."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry or CollectorRegistry()
        self.books_counted = Counter(
            "synergychat_crawler_books_counted",
            "Books counted by this process (a recount after CRAWLER_KEYWORDS changed included).",
            registry=registry,
        )
        self.books_skipped = Counter(
            "synergychat_crawler_books_skipped",
            "Books given up by this process (no plain text, too large, unavailable).",
            registry=registry,
        )
        self.catalogue_errors = Counter(
            "synergychat_crawler_catalogue_errors",
            "Requests to the catalogue (pages and book files) that failed, retries included.",
            registry=registry,
        )
        self.last_success = Gauge(
            "synergychat_crawler_last_success_timestamp_seconds",
            "When a book was last counted (Unix time, kept in the count database); 0 if never.",
            registry=registry,
        )


class ProcessMetrics:
    """The process's registry: the request histogram, the process's own gauges, and its parts'."""

    def __init__(self, default_role: str, *, api: bool = False, crawler: bool = False) -> None:
        self.registry = CollectorRegistry()
        # What prometheus-client's default registry has: CPU, memory, open files, GC, Python version.
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(collector)
        self.request_duration = LoopHistogram(
            "synergychat_http_request_duration_seconds",
            "Time from a request's arrival to the end of its response, by the route that answered.",
            ("role", "route", "method", "status"),
            REQUEST_BUCKETS,
        )
        self.registry.register(self.request_duration)
        self.api = ApiMetrics(self.registry) if api else None
        self.crawler = CrawlerMetrics(self.registry) if crawler else None
        self._default_role = default_role
        # resource -> (role, route), filled as each part's app is built, before it is
        # mounted under a prefix; id(app) -> role, for paths no route of the app matches.
        self._routes: dict[Any, tuple[str, str]] = {}
        self._app_roles: dict[int, str] = {}
        # (resource or id(app), method, status) -> its series: finding the labels costs more
        # than the observation itself. Bounded: routes x methods x statuses.
        self._series: dict[tuple[Any, str, int], HistogramSeries] = {}

    def name_routes(self, app: web.Application, role: str) -> None:
        """Label the requests ``app``'s routes answer with ``role`` and their path within the app."""
        self._app_roles[id(app)] = role
        for resource in app.router.resources():
            self._routes[resource] = (role, resource.canonical)

    def serve_on(self, app: web.Application, role: str) -> None:
        """Answer ``GET /metrics`` on ``app`` (the process's root app: one endpoint per process)."""
        self._app_roles.setdefault(id(app), role)
        resource = app.router.add_get(METRICS_PATH, self.handle).resource
        assert resource is not None
        self._routes[resource] = (role, METRICS_PATH)

    async def handle(self, request: web.Request) -> web.Response:
        # The gateway and nginx refuse /metrics and /api/metrics by their literal path;
        # a spelling they pass that aiohttp still routes here (/%6Detrics after a
        # prefix rewrite) must not reach the numbers either.
        if request.raw_path.partition("?")[0] != METRICS_PATH:
            raise web.HTTPNotFound()
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encoder(self.registry), headers={"Content-Type": content_type})

    def observe(self, request: BaseRequest, status: int, seconds: float) -> None:
        """Count one finished request (called by the access logger, once per request)."""
        method = request.method if request.method in KNOWN_METHODS else OTHER_METHOD
        # A request that wasn't HTTP never reached the router: it has no match info (and
        # the public ``match_info`` asserts that it has).
        match_info = getattr(request, "_match_info", None)
        resource = match_info.route.resource if match_info is not None else None
        if resource is not None:
            key: Any = resource
        elif match_info is not None and match_info.apps:
            key = id(match_info.apps[-1])
        else:
            key = None
        series = self._series.get((key, method, status))
        if series is None:
            role, route = self._labels(resource, key)
            series = self.request_duration.series((role, route, method, str(status)))
            self._series[(key, method, status)] = series
        series.observe(seconds)

    def _labels(self, resource: Any, key: Any) -> tuple[str, str]:
        if resource is not None:
            # A route added after its app was named: its full path, under the default role.
            return self._routes.get(resource) or (self._default_role, resource.canonical)
        return self._app_roles.get(key, self._default_role), UNMATCHED_ROUTE


# The api part's metrics, on its app (under ``all`` they share the process's registry).
API_METRICS = web.AppKey("api_metrics", ApiMetrics)
# The process's metrics, on its root app: the server observes requests into them.
PROCESS_METRICS = web.AppKey("process_metrics", ProcessMetrics)
