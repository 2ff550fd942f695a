"""Fixtures shared by the in-process suites: settings → app (same factories as production) → client."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient, AiohttpServer

from synergychat.api import create_api_app
from synergychat.settings import ApiSettings
from synergychat.stats import KeywordCount, KeywordTotals, totals_from_counts
from synergychat.transport import CrawlerClient, HttpCrawlerClient, InProcessCrawlerClient
from tests.support.chat_server import ChatTestServer

# A real PostgreSQL, started once per session by the tests that ask for it (postgres_url);
# every answer of the api and the crawler checked against their OpenAPI documents (autouse).
pytest_plugins = ["tests.support.postgres", "tests.support.openapi_responses"]

CANNED_COUNTS: list[KeywordCount] = [
    {"Keyword": "hate", "BookTitle": "Frankenstein; Or, The Modern Prometheus", "Count": 3},
    {"Keyword": "love", "BookTitle": "Pride and Prejudice", "Count": 10},
    {"Keyword": "love", "BookTitle": "Frankenstein; Or, The Modern Prometheus", "Count": 17},
]


class StubCrawler:
    """Stands in for synergychat.crawler.Crawler: the same methods, canned counts.

    ``delay`` makes it slow; ``broken`` makes it fail the way a crashed crawler would.
    """

    def __init__(self) -> None:
        self.delay = 0.0
        self.broken = False
        self.queries: list[tuple[tuple[str, ...], str]] = []

    async def check(self) -> None:
        if self.broken:
            raise RuntimeError("crawl task died")

    async def stats(self, keywords: Sequence[str], title: str) -> list[KeywordCount]:
        self.queries.append((tuple(keywords), title))
        await asyncio.sleep(self.delay)
        if self.broken:
            raise RuntimeError("crawl task died")
        rows = [
            row
            for row in CANNED_COUNTS
            if (not keywords or row["Keyword"] in keywords) and title.lower() in row["BookTitle"].lower()
        ]
        return sorted(rows, key=lambda row: row["Count"])

    async def totals(self, keywords: Sequence[str], title: str) -> KeywordTotals:
        return totals_from_counts(await self.stats(keywords, title))

    async def status(self) -> dict[str, Any]:
        return {
            "state": "crawling",
            "books_counted": 2,
            "pages_done": 1,
            "keywords": ["love", "hate"],
        }


def stub_crawler_http_app(crawler: StubCrawler) -> web.Application:
    """The stub behind the crawler's HTTP endpoints, for the HTTP transport."""

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def stats(request: web.Request) -> web.Response:
        keywords = [k for k in request.query.get("keywords", "").split(",") if k]
        return web.json_response(await crawler.stats(keywords, request.query.get("title", "")))

    async def totals(request: web.Request) -> web.Response:
        keywords = [k for k in request.query.get("keywords", "").split(",") if k]
        return web.json_response(await crawler.totals(keywords, request.query.get("title", "")))

    async def status(request: web.Request) -> web.Response:
        return web.json_response(await crawler.status())

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/stats", stats)
    app.router.add_get("/stats/totals", totals)
    app.router.add_get("/status", status)
    return app


@pytest.fixture
def aiohttp_client(aiohttp_client: AiohttpClient) -> Callable[..., Awaitable[Any]]:
    """pytest-aiohttp's client, its apps served as the roles serve them (``ChatTestServer``)."""

    async def client(app_or_server: Any, *args: Any, server_kwargs: Any = None, **kwargs: Any) -> Any:
        if isinstance(app_or_server, web.Application):
            app_or_server = ChatTestServer(app_or_server, **(server_kwargs or {}))
        return await aiohttp_client(app_or_server, *args, **kwargs)

    return client


@pytest.fixture
def api_settings(tmp_path: Any) -> ApiSettings:
    return ApiSettings(api_db_filepath=str(tmp_path / "db" / "messages.sqlite3"))


@pytest.fixture(params=["sqlite", "postgresql"])
def api_settings_on_each_database(request: pytest.FixtureRequest, tmp_path: Any) -> ApiSettings:
    """The api on each of its databases: modules whose tests are the message store's
    promises as the api keeps them use this as their ``api_settings``."""
    if request.param == "postgresql":
        return ApiSettings(api_database_url=request.getfixturevalue("postgres_url"))
    return ApiSettings(api_db_filepath=str(tmp_path / "db" / "messages.sqlite3"))


@pytest.fixture
def stub_crawler() -> StubCrawler:
    return StubCrawler()


@pytest.fixture(params=["in-process", "http"])
async def crawler_client(
    request: pytest.FixtureRequest, stub_crawler: StubCrawler, aiohttp_server: AiohttpServer
) -> CrawlerClient:
    """Both transports the api uses, in front of the same stub crawler."""
    if request.param == "in-process":
        # StubCrawler has Crawler's methods, not its class (no catalogue, no store).
        return InProcessCrawlerClient(stub_crawler)  # type: ignore[arg-type]
    server = await aiohttp_server(stub_crawler_http_app(stub_crawler))
    return HttpCrawlerClient(str(server.make_url("/")), timeout_seconds=1.0)


@pytest.fixture
async def api_client(
    aiohttp_client: AiohttpClient, api_settings: ApiSettings, crawler_client: CrawlerClient
) -> TestClient[web.Request, web.Application]:
    return await aiohttp_client(create_api_app(api_settings, crawler_client))


async def expect_json(response: Any, expected_status: int) -> Any:
    """Check the status, then return the parsed JSON body."""
    body = await response.text()
    assert response.status == expected_status, body
    assert response.content_type == "application/json", response.content_type
    return await response.json()


async def post_message(
    client: TestClient[web.Request, web.Application],
    author: str,
    text: str,
    expected_status: int = 201,
    path: str = "/messages",
) -> Any:
    return await expect_json(
        await client.post(path, json={"AuthorUsername": author, "Text": text}), expected_status
    )
