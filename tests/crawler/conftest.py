"""Fixtures for the crawler: a fake catalogue → settings → Crawler → the app from the same factory."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from synergychat.crawler import Crawler, create_crawler_app
from synergychat.gutendex import RetryPolicy, Timeouts
from synergychat.settings import CrawlerSettings
from synergychat.storage import CountStore, SqliteCountStore
from synergychat.storage.pg_counts import PostgresCountStore
from tests.support.chat_server import ChatTestServer

from .fake_gutendex import FakeBook, FakeGutendex, zipped

KEYWORDS = ["love", "hate"]
# Retries that take milliseconds; a read timeout short enough for the TIMEOUT fault.
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.001, max_delay=0.01, max_retry_after=0.05)
FAST_TIMEOUTS = Timeouts(connect=2.0, read=0.3, page=5.0)


def closed_port_url(path: str) -> str:
    """A URL on 127.0.0.1 where nothing listens: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def sample_books() -> list[FakeBook]:
    """Eight books, three per page; each comment gives its counts (love, hate) by hand."""
    return [
        # CRLF, case, "gloves": love 3, hate 2.
        FakeBook.plain(
            84,
            "Frankenstein; Or, The Modern Prometheus",
            "I love you.\r\nLOVE and HATE\r\ngloves\r\nnothing here\r\nhate hate hate\r\n",
        ),
        # The real catalogue's us-ascii key: love 4, hate 0.
        FakeBook.plain(1342, "Pride and Prejudice", "love\nlove\nlove\nlove\n", charset="us-ascii"),
        # Latin-1 bytes ("whatever" holds hate): love 1, hate 1.
        FakeBook.plain(
            11,
            "Alice's Adventures in Wonderland",
            "Café love\nwhatever\n".encode("latin-1"),
            charset="iso-8859-1",
        ),
        # Only a zip: love 2, hate 1 (the zip's html member is not counted).
        FakeBook(
            2701,
            "Moby Dick; Or, The Whale",
            {"text/plain; charset=utf-8": "2701.zip"},
            {"2701.zip": zipped("2701-0.txt", "love\nlove\nhate\n")},
        ),
        # No plain text at all: skipped.
        FakeBook(
            100,
            "The Complete Works of William Shakespeare",
            {"text/html": "100.html", "application/epub+zip": "100.epub"},
            {"100.html": b"love"},
        ),
        # Bad bytes in declared UTF-8: love 1 ("lo\xffve" is not love), hate 1.
        FakeBook.plain(1661, "The Adventures of Sherlock Holmes", b"lo\xffve\nlove\xff\nHATE\n"),
        # Non-ASCII title and text: love 1, hate 0.
        FakeBook.plain(5200, "Émile", "ÉMILE love\n"),
        # A zip and a plain text: the plain one is read, love 1, hate 1.
        FakeBook(
            64317,
            "The Great Gatsby",
            {"text/plain; charset=utf-8": "64317.zip", "text/plain": "64317.txt"},
            {"64317.zip": zipped("64317.txt", "love\n" * 9), "64317.txt": b"love\nhate\n"},
        ),
    ]


# (keyword, title) -> Count, from the comments above; zero counts have no row.
SAMPLE_COUNTS = {
    ("love", "Frankenstein; Or, The Modern Prometheus"): 3,
    ("hate", "Frankenstein; Or, The Modern Prometheus"): 2,
    ("love", "Pride and Prejudice"): 4,
    ("love", "Alice's Adventures in Wonderland"): 1,
    ("hate", "Alice's Adventures in Wonderland"): 1,
    ("love", "Moby Dick; Or, The Whale"): 2,
    ("hate", "Moby Dick; Or, The Whale"): 1,
    ("love", "The Adventures of Sherlock Holmes"): 1,
    ("hate", "The Adventures of Sherlock Holmes"): 1,
    ("love", "Émile"): 1,
    ("love", "The Great Gatsby"): 1,
    ("hate", "The Great Gatsby"): 1,
}
SAMPLE_TEXT_FILES = ["84.txt", "1342.txt", "11.txt", "2701.zip", "1661.txt", "5200.txt", "64317.txt"]


def rows(counts: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], int]:
    return {(row["Keyword"], row["BookTitle"]): row["Count"] for row in counts}


@pytest.fixture
async def serve_fake(aiohttp_server: Any) -> Callable[..., Awaitable[FakeGutendex]]:
    async def serve(
        books: list[FakeBook] | None = None, page_size: int = 3, port: int | None = None
    ) -> FakeGutendex:
        fake = FakeGutendex(sample_books() if books is None else books, page_size)
        server = await aiohttp_server(fake.app(), port=port)
        fake.base_url = str(server.make_url("")).rstrip("/")
        return fake

    return serve


@pytest.fixture
async def gutendex(serve_fake: Callable[..., Awaitable[FakeGutendex]]) -> FakeGutendex:
    return await serve_fake()


# Every count store: SQLite in a file (read by /stats on connections of its own), SQLite in
# memory (one connection), and PostgreSQL (a real server, tests/support/postgres.py).
COUNT_STORE_KINDS = ["sqlite-file", "sqlite-memory", "postgres"]
# Short enough that a lease test waits a second or two for one to run out.
TEST_LEASE_SECONDS = 1.5

OpenCountStore = Callable[[], Awaitable[CountStore]]


@pytest.fixture(params=COUNT_STORE_KINDS)
async def open_count_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OpenCountStore]:
    """Opens count stores of one kind, all on the same database (several: replicas of one);
    closed after the test."""
    kind = request.param
    # PostgreSQL's server is started only when a postgres case runs.
    url = request.getfixturevalue("postgres_url") if kind == "postgres" else ""
    opened: list[CountStore] = []

    async def open_store() -> CountStore:
        store: CountStore
        if kind == "postgres":
            store = await PostgresCountStore.open(url, 4, TEST_LEASE_SECONDS)
        else:
            store = await SqliteCountStore.open(
                tmp_path / "counts.sqlite3" if kind == "sqlite-file" else None
            )
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        await store.close()


def crawler_settings(
    db: Path | None, source_url: str, keywords: list[str] = KEYWORDS, database_url: str = ""
) -> CrawlerSettings:
    # Every field set: nothing may come from the developer's environment (and never the real Gutendex).
    return CrawlerSettings(
        crawler_port=8080,
        crawler_keywords=keywords,
        crawler_db_path=str(db) if db else "",
        crawler_database_url=database_url,
        crawler_lease_seconds=TEST_LEASE_SECONDS,
        crawler_source_url=source_url,
        crawler_delay_seconds=0,
    )


def make_crawler(settings: CrawlerSettings, **overrides: Any) -> Crawler:
    options: dict[str, Any] = {
        "retry": FAST_RETRY,
        "timeouts": FAST_TIMEOUTS,
        "rescan_after_seconds": 3600,
        "page_retry_seconds": 0.05,
    }
    options.update(overrides)
    return Crawler(settings, **options)


class RunningCrawler:
    """A crawler app served for one test; ``stop`` runs its shutdown like a SIGTERM would."""

    def __init__(self, crawler: Crawler, client: TestClient[web.Request, web.Application]) -> None:
        self.crawler = crawler
        self.client = client

    async def stop(self) -> None:
        await self.client.close()

    async def get_json(self, path: str, expected_status: int = 200, **params: Any) -> Any:
        response = await self.client.get(path, params=params)
        assert response.status == expected_status, await response.text()
        return await response.json()

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15.0
    ) -> dict[str, Any]:
        """Poll /status until ``predicate`` holds; fail with the last status if it never does."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            status = await self.crawler.status()
            if predicate(status):
                return status
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"status never matched: {status}")
            await asyncio.sleep(0.01)

    async def wait_until_waiting(self) -> dict[str, Any]:
        """Until the pass over the catalogue is done."""
        return await self.wait_for(lambda status: status["state"] == "waiting")


@pytest.fixture
async def start_crawler(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[RunningCrawler]]]:
    started: list[TestClient[web.Request, web.Application]] = []

    async def start(
        settings: CrawlerSettings | None = None, source_url: str = "", **overrides: Any
    ) -> RunningCrawler:
        settings = settings or crawler_settings(tmp_path / "counts", source_url)
        crawler = make_crawler(settings, **overrides)
        client = TestClient(ChatTestServer(create_crawler_app(settings, crawler)))
        await client.start_server()
        started.append(client)
        return RunningCrawler(crawler, client)

    yield start
    # Closing twice is harmless: a test that stopped its crawler already did.
    for client in started:
        await client.close()
