"""Which parts each role runs, and how ``all`` composes them (Loki's targets).

A role is a set of parts. Each part needs one settings model and contributes
one aiohttp app. ``all`` is just the role whose parts are all of them: the web
app is the root (its routes can't live under an empty prefix), the api is a
sub-app at ``/api/`` and the crawler one at ``/crawler/``.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from aiohttp import web

from . import keys
from .metrics import PROCESS_METRICS, ProcessMetrics
from .readiness import Readiness
from .settings import ApiSettings, CrawlerSettings, WebSettings

if TYPE_CHECKING:
    from .transport import CrawlerClient

log = logging.getLogger(__name__)


class Role(StrEnum):
    WEB = "web"
    API = "api"
    CRAWLER = "crawler"
    ALL = "all"


class Part(StrEnum):
    WEB = "web"
    API = "api"
    CRAWLER = "crawler"


ROLE_PARTS: dict[Role, frozenset[Part]] = {
    Role.WEB: frozenset({Part.WEB}),
    Role.API: frozenset({Part.API}),
    Role.CRAWLER: frozenset({Part.CRAWLER}),
    Role.ALL: frozenset(Part),
}

# Under `all` the page and the api share an origin, so the browser finds the api here.
ALL_API_URL = "/api"


class CrawlerTransport(StrEnum):
    IN_PROCESS = "in-process"
    HTTP = "http"
    NONE = "none"


@dataclass(frozen=True)
class RoleSettings:
    """The settings a role's parts need; parts a role lacks have none."""

    web: WebSettings | None = None
    api: ApiSettings | None = None
    crawler: CrawlerSettings | None = None


def load_settings(role: Role) -> RoleSettings:
    """Parse, from the environment, only the settings the role's parts use.

    Raises pydantic's ValidationError on an invalid variable.
    """
    parts = ROLE_PARTS[role]
    web_settings = WebSettings() if Part.WEB in parts else None
    if role is Role.ALL and web_settings is not None and "api_url" not in web_settings.model_fields_set:
        web_settings = web_settings.model_copy(update={"api_url": ALL_API_URL})
    return RoleSettings(
        web=web_settings,
        api=ApiSettings() if Part.API in parts else None,
        crawler=CrawlerSettings() if Part.CRAWLER in parts else None,
    )


def crawler_transport(parts: frozenset[Part], api_settings: ApiSettings) -> CrawlerTransport:
    # Co-located: a direct call, whatever CRAWLER_BASE_URL says.
    if Part.CRAWLER in parts:
        return CrawlerTransport.IN_PROCESS
    # Standalone api: over the network, if it was told where.
    if api_settings.crawler_base_url:
        return CrawlerTransport.HTTP
    return CrawlerTransport.NONE


# `all` serves everything on the web port.
PORT_VARIABLES = {
    Role.WEB: "WEB_PORT",
    Role.ALL: "WEB_PORT",
    Role.API: "API_PORT",
    Role.CRAWLER: "CRAWLER_PORT",
}


def listen_port(role: Role, settings: RoleSettings) -> int:
    if role in (Role.WEB, Role.ALL):
        assert settings.web is not None
        return settings.web.web_port
    if role is Role.API:
        assert settings.api is not None
        return settings.api.api_port
    assert settings.crawler is not None
    return settings.crawler.crawler_port


def build_app(role: Role, settings: RoleSettings) -> web.Application:
    """Compose the role's app from the parts' factories. Does no I/O.

    Each part's modules are imported only for a role that runs it: the web role starts
    without the api's and the crawler's (their databases, validation tables, engines).
    """
    parts = ROLE_PARTS[role]
    # One registry for the process, whatever it runs; each part adds its own metrics to it.
    metrics = ProcessMetrics(role.value, api=Part.API in parts, crawler=Part.CRAWLER in parts)
    crawler = crawler_app = None
    if settings.crawler is not None:
        from .crawler import Crawler, create_crawler_app

        crawler = Crawler(settings.crawler, metrics=metrics.crawler)
        crawler_app = create_crawler_app(settings.crawler, crawler)
        metrics.name_routes(crawler_app, Part.CRAWLER.value)

    api_app = None
    if settings.api is not None:
        from .api import api_readiness, create_api_app
        from .transport import HttpCrawlerClient, InProcessCrawlerClient, NoCrawlerClient

        client: CrawlerClient
        transport = crawler_transport(parts, settings.api)
        if transport is CrawlerTransport.IN_PROCESS:
            assert crawler is not None
            if settings.api.crawler_base_url:
                log.info("CRAWLER_BASE_URL is ignored: the crawler runs in this process")
            client = InProcessCrawlerClient(crawler)
        elif transport is CrawlerTransport.HTTP:
            client = HttpCrawlerClient(settings.api.crawler_base_url, settings.api.crawler_timeout_seconds)
        else:
            client = NoCrawlerClient()
        api_app = create_api_app(settings.api, client, metrics.api)
        metrics.name_routes(api_app, Part.API.value)

    if settings.web is None:
        # A single-part role: that part's app is the whole server.
        app = api_app or crawler_app
        assert app is not None
        return with_metrics(app, metrics, role.value)

    from .web import create_web_app

    root = create_web_app(settings.web)
    # Named before the parts are mounted: their routes keep their own paths (/messages, not
    # /api/messages), so a dashboard reads the same whether the api runs alone or under `all`.
    metrics.name_routes(root, Part.WEB.value)
    if api_app is not None:
        root.add_subapp("/api/", api_app)
        # One probe for the pod: the api's readiness (its database; the crawler as information).
        readiness: Readiness = functools.partial(api_readiness, api_app)
        root[keys.COMPOSED_READINESS] = readiness
    if crawler_app is not None:
        root.add_subapp("/crawler/", crawler_app)
    # One /metrics for the process, at its root: not again at /api/metrics or /crawler/metrics.
    return with_metrics(root, metrics, Part.WEB.value)


def with_metrics(app: web.Application, metrics: ProcessMetrics, role: str) -> web.Application:
    app[PROCESS_METRICS] = metrics
    metrics.serve_on(app, role)
    return app
