"""crawler-bot when the crawler runs but its book catalogue does not answer, over both transports.

A real crawler (the same factory as production) reads a catalogue that is down;
the api asks it in-process (``--role all``) or over HTTP (a standalone crawler).
"0 matches so far" alone would read as "there are none": the bot must say it
can't reach the catalogue, never where the catalogue is, and what it has so far.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient, AiohttpServer

from synergychat.api import create_api_app
from synergychat.bot import describe_totals
from synergychat.crawler import Crawler, create_crawler_app
from synergychat.settings import ApiSettings
from synergychat.storage import CountedBook
from synergychat.transport import CatalogueStatus, CrawlerClient, HttpCrawlerClient, InProcessCrawlerClient
from tests.conftest import post_message
from tests.crawler import fake_gutendex as faults
from tests.crawler.conftest import closed_port_url, crawler_settings, make_crawler
from tests.crawler.fake_gutendex import FakeBook, FakeGutendex


@dataclass
class ChatWithCrawler:
    api: TestClient[web.Request, web.Application]
    crawler: Crawler

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15.0
    ) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            status = await self.crawler.status()
            if predicate(status):
                return status
            assert asyncio.get_running_loop().time() < deadline, f"status never matched: {status}"
            await asyncio.sleep(0.01)

    async def ask(self, text: str = "/stats") -> str:
        page = await post_message(self.api, "ann", text)
        assert page[-2]["Text"] == text and page[-1]["AuthorUsername"] == "crawler-bot"
        return str(page[-1]["Text"])


@pytest.fixture(params=["in-process", "http"])
def start_chat(
    request: pytest.FixtureRequest,
    aiohttp_server: AiohttpServer,
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
) -> Callable[[str], Any]:
    async def start(source_url: str) -> ChatWithCrawler:
        settings = crawler_settings(tmp_path / "counts", source_url)
        crawler = make_crawler(settings)
        server = await aiohttp_server(create_crawler_app(settings, crawler))
        client: CrawlerClient
        if request.param == "in-process":
            client = InProcessCrawlerClient(crawler)
        else:
            client = HttpCrawlerClient(str(server.make_url("/")), timeout_seconds=2.0)
        api_settings = ApiSettings(api_db_filepath=str(tmp_path / "api" / "messages.sqlite3"))
        return ChatWithCrawler(await aiohttp_client(create_api_app(api_settings, client)), crawler)

    return start


def unreachable(status: dict[str, Any]) -> bool:
    return status["catalogue"]["reachable"] is False


async def test_a_dead_catalogue_is_said_plainly_with_no_address(start_chat: Any) -> None:
    dead = closed_port_url("")
    chat = await start_chat(dead)
    status = await chat.wait_for(unreachable)
    # /status keeps the detail for operators: when, and what failed.
    assert status["catalogue"]["since"].endswith("Z") and status["catalogue"]["error"]
    reply = await chat.ask()
    assert reply.startswith("Beep boop! I can't reach the book catalogue since ")
    assert "So far I have found 0 matches" in reply and "I have read 0 books so far." in reply
    # Never where the catalogue is (nor the fault's text, which names it).
    assert dead.split("//")[1] not in reply and "http" not in reply and "127.0.0.1" not in reply


async def test_what_was_counted_before_the_catalogue_went_down_is_still_told(start_chat: Any) -> None:
    chat = await start_chat(closed_port_url(""))
    await chat.wait_for(unreachable)
    store = chat.crawler._store
    assert store is not None
    # Counted in an earlier run, when the catalogue answered.
    book = CountedBook(84, "Frankenstein; Or, The Modern Prometheus", "http://files/84.txt", None)
    await store.save_counts(book, ["love", "hate"], {"love": 17, "hate": 3}, 1)
    reply = await chat.ask("/stats keywords=love")
    assert reply.startswith("Beep boop! I can't reach the book catalogue")
    assert "So far I have found 17 matches" in reply and "love: 17 (in 1 book)" in reply
    assert "I have read 1 book so far." in reply


async def test_the_bot_says_nothing_of_it_once_the_catalogue_answers_again(
    start_chat: Any, aiohttp_server: Any
) -> None:
    fake = FakeGutendex([FakeBook.plain(84, "Frankenstein", "love\nlove\n")], page_size=3)
    server = await aiohttp_server(fake.app())
    fake.base_url = str(server.make_url("")).rstrip("/")
    # The first page drops every connection for a while: the catalogue is down.
    fake.fail("/books/", *[faults.DROP] * 400)
    chat = await start_chat(fake.base_url)
    await chat.wait_for(unreachable)
    assert (await chat.ask()).startswith("Beep boop! I can't reach the book catalogue")
    fake.faults["/books/"].clear()
    status = await chat.wait_for(lambda s: s["state"] == "waiting")
    assert status["catalogue"]["reachable"] is True and status["catalogue"]["error"] is None
    reply = await chat.ask()
    assert reply.startswith("Beep boop! I have found 2 matches so far") and "catalogue" not in reply


@pytest.mark.parametrize(
    ("since", "said"),
    [
        # Today: the time is enough.
        (f"{datetime.now(UTC):%Y-%m-%d}T09:05:00.000Z", " since 09:05 UTC,"),
        # Another day: the date too.
        ("2026-01-02T09:05:00.000Z", " since 2026-01-02 09:05 UTC,"),
        # Unknown or unreadable: no time rather than a wrong one.
        (None, "catalogue, so"),
        ("soon", "catalogue, so"),
    ],
)
def test_since_when_is_said_plainly(since: str | None, said: str) -> None:
    catalogue = CatalogueStatus(reachable=False, since=since, error="ClientConnectorError: 10.0.0.7:443")
    reply = describe_totals({"totals": {"love": 2}, "books": 1}, 5, catalogue)
    assert said in reply and "10.0.0.7" not in reply, reply
    assert reply.endswith("love: 2 (in 1 book). I have read 5 books so far.")


def test_a_catalogue_not_yet_tried_or_answering_changes_nothing() -> None:
    for catalogue in (None, CatalogueStatus(), CatalogueStatus(reachable=True, since="2026-01-02T09:05:00Z")):
        reply = describe_totals({"totals": {"love": 2}, "books": 1}, 5, catalogue)
        assert reply.startswith("Beep boop! I have found 2 matches so far"), reply
