"""The api's public ``GET /crawl/progress``, over both transports, and when there is no crawler to ask.

A real crawler (the same factory as production) reads the fake catalogue; the api asks
it in-process (``--role all``) or over HTTP (a standalone crawler). The answer is the
crawl's state and counts only: never the catalogue's address, nor an error's text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient, AiohttpServer

from synergychat.api import create_api_app
from synergychat.crawler import Crawler, create_crawler_app
from synergychat.public_progress import CACHE_SECONDS, CrawlProgressEndpoint
from synergychat.settings import ApiSettings
from synergychat.transport import (
    CrawlerClient,
    CrawlerUnavailable,
    CrawlProgress,
    HttpCrawlerClient,
    InProcessCrawlerClient,
    NoCrawlerClient,
)
from tests.conftest import expect_json
from tests.crawler.conftest import closed_port_url, crawler_settings, make_crawler
from tests.crawler.fake_gutendex import FakeBook, FakeGutendex

PROGRESS_KEYS = {"state", "books_done", "books_total", "percent", "books_per_minute", "eta_seconds"}


@dataclass
class ApiWithCrawler:
    api: TestClient[web.Request, web.Application]
    crawler: Crawler

    async def progress(self, expected_status: int = 200) -> Any:
        return await expect_json(await self.api.get("/crawl/progress"), expected_status)


@pytest.fixture(params=["in-process", "http"])
def start_api(
    request: pytest.FixtureRequest,
    aiohttp_server: AiohttpServer,
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
) -> Callable[[str], Awaitable[ApiWithCrawler]]:
    async def start(source_url: str) -> ApiWithCrawler:
        settings = crawler_settings(tmp_path / "counts", source_url)
        crawler = make_crawler(settings)
        server = await aiohttp_server(create_crawler_app(settings, crawler))
        client: CrawlerClient
        if request.param == "in-process":
            client = InProcessCrawlerClient(crawler)
        else:
            client = HttpCrawlerClient(str(server.make_url("/")), timeout_seconds=2.0)
        api = await aiohttp_client(create_api_app(ApiSettings(), client))
        return ApiWithCrawler(api, crawler)

    return start


async def wait_for_state(crawler: Crawler, state: str) -> dict[str, Any]:
    for _ in range(1500):
        status = await crawler.status()
        if status["state"] == state:
            return status
        await asyncio.sleep(0.01)
    raise AssertionError(f"the crawler never reached {state}: {status}")


async def test_the_crawl_s_progress_and_nothing_else(
    start_api: Callable[[str], Awaitable[ApiWithCrawler]], aiohttp_server: Any
) -> None:
    books = [FakeBook.plain(n, f"Book {n}", "love\n") for n in range(1, 6)]
    fake = FakeGutendex(books, page_size=2)
    server = await aiohttp_server(fake.app())
    fake.base_url = str(server.make_url("")).rstrip("/")
    chat = await start_api(fake.base_url)
    status = await wait_for_state(chat.crawler, "waiting")

    body = await chat.progress()
    assert set(body) == PROGRESS_KEYS
    # The rate moves with the clock (the window slides); the rest is what /status says.
    rate = body.pop("books_per_minute")
    del status["progress"]["books_per_minute"]
    assert body == {"state": "waiting", **status["progress"]}
    assert isinstance(rate, float) and rate > 0
    assert body["books_done"] == 5 and body["books_total"] == 5 and body["percent"] == 100.0
    assert body["eta_seconds"] is None


async def test_a_dead_catalogue_is_a_state_not_an_address(
    start_api: Callable[[str], Awaitable[ApiWithCrawler]],
) -> None:
    dead = closed_port_url("")
    chat = await start_api(dead)
    await wait_for_state(chat.crawler, "retrying")
    body = await chat.progress()
    assert body == {
        "state": "retrying",
        "books_done": 0,
        "books_total": None,
        "percent": None,
        "books_per_minute": None,
        "eta_seconds": None,
    }
    text = await (await chat.api.get("/crawl/progress")).text()
    assert dead.split("//")[1] not in text and "http" not in text


async def test_not_configured_is_503(aiohttp_client: Any) -> None:
    api = await aiohttp_client(create_api_app(ApiSettings(), NoCrawlerClient()))
    response = await api.get("/crawl/progress")
    body = await expect_json(response, 503)
    assert body == {"error": "no crawler is configured for this chat"}
    assert response.headers["Retry-After"] == "30"


@pytest.mark.parametrize(
    "crawler",
    [
        # Nothing listens at CRAWLER_BASE_URL.
        "closed port",
        # An original (Go) crawler: /status is a 404.
        "original",
        # A crawler whose /status answers 500.
        "broken",
    ],
)
async def test_a_crawler_that_can_t_tell_is_503_without_details(
    crawler: str, aiohttp_client: Any, aiohttp_server: Any
) -> None:
    if crawler == "closed port":
        url = closed_port_url("/")
    else:

        async def status(request: web.Request) -> web.Response:
            if crawler == "original":
                raise web.HTTPNotFound()
            return web.json_response({"error": "database is locked at /var/lib/x"}, status=500)

        app = web.Application()
        app.router.add_get("/status", status)
        url = str((await aiohttp_server(app)).make_url("/"))
    api = await aiohttp_client(create_api_app(ApiSettings(), HttpCrawlerClient(url, 1.0)))
    response = await api.get("/crawl/progress")
    assert await expect_json(response, 503) == {"error": "the crawler is not answering right now"}
    assert response.headers["Retry-After"] == "30"


async def test_a_stuck_in_process_crawler_times_out(aiohttp_client: Any) -> None:
    class StuckCrawler:
        async def status(self) -> dict[str, Any]:
            await asyncio.sleep(30)
            raise AssertionError("never")

    # A stand-in for Crawler with only the method this path calls.
    client = InProcessCrawlerClient(StuckCrawler())  # type: ignore[arg-type]
    api = await aiohttp_client(create_api_app(ApiSettings(crawler_timeout_seconds=0.2), client))
    assert await expect_json(await api.get("/crawl/progress"), 503) == {
        "error": "the crawler is not answering right now"
    }


class CountingCrawler:
    """Answers ``progress`` after ``delay``, counting the calls; fails when ``broken``."""

    location = "in-process"

    def __init__(self) -> None:
        self.calls = 0
        self.delay = 0.0
        self.broken = False

    async def progress(self) -> CrawlProgress:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.broken:
            raise CrawlerUnavailable("down")
        return CrawlProgress(
            state="crawling",
            books_done=self.calls,
            books_total=100,
            percent=float(self.calls),
            books_per_minute=2.0,
            eta_seconds=60.0,
        )


async def test_many_pages_asking_cost_the_crawler_one_call_per_period() -> None:
    now = [0.0]
    crawler = CountingCrawler()
    # CountingCrawler has only the part of CrawlerClient the endpoint calls (progress).
    endpoint = CrawlProgressEndpoint(crawler, 1.0, clock=lambda: now[0])  # type: ignore[arg-type]
    crawler.delay = 0.05

    # Asked at once: one call, shared.
    first = await asyncio.gather(*[endpoint._progress() for _ in range(20)])
    assert crawler.calls == 1 and {answer.books_done for answer in first} == {1}
    # Within the period: the same answer.
    now[0] += CACHE_SECONDS - 1
    assert (await endpoint._progress()).books_done == 1 and crawler.calls == 1
    # After it: asked again; a failure is kept for the period as well.
    now[0] += 2
    crawler.broken = True
    with pytest.raises(CrawlerUnavailable):
        await endpoint._progress()
    with pytest.raises(CrawlerUnavailable):
        await endpoint._progress()
    assert crawler.calls == 2
    now[0] += CACHE_SECONDS
    crawler.broken = False
    assert (await endpoint._progress()).books_done == 3


async def test_a_page_that_goes_away_does_not_cancel_the_others_answer() -> None:
    crawler = CountingCrawler()
    crawler.delay = 0.2
    # CountingCrawler has only the part of CrawlerClient the endpoint calls (progress).
    endpoint = CrawlProgressEndpoint(crawler, 1.0)  # type: ignore[arg-type]
    leaving = asyncio.ensure_future(endpoint._progress())
    staying = asyncio.ensure_future(endpoint._progress())
    await asyncio.sleep(0.05)
    leaving.cancel()
    assert (await staying).books_done == 1 and crawler.calls == 1
