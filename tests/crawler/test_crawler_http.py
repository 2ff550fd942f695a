"""The crawler's HTTP face: /stats filters and order, /status, /readyz, and both api transports."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from multidict import MultiDict, MultiMapping
from yarl import URL

from synergychat import crawler as crawler_module
from synergychat.crawler import CrawlerNotReady, parse_stats_query
from synergychat.roles import Role, RoleSettings, build_app
from synergychat.settings import ApiSettings, WebSettings
from synergychat.storage import CountedBook, CountStore, SqliteCountStore
from synergychat.transport import CrawlerUnavailable, HttpCrawlerClient, InProcessCrawlerClient
from tests.support.chat_server import ChatTestServer

from .conftest import SAMPLE_COUNTS, OpenCountStore, RunningCrawler, crawler_settings, make_crawler, rows
from .fake_gutendex import FakeGutendex

StartCrawler = Callable[..., Awaitable[RunningCrawler]]


@pytest.fixture
async def crawled(gutendex: FakeGutendex, start_crawler: StartCrawler) -> RunningCrawler:
    running = await start_crawler(source_url=gutendex.base_url)
    await running.wait_until_waiting()
    return running


def only(keywords: set[str] | None = None, title: str = "") -> dict[tuple[str, str], int]:
    return {
        (keyword, book): count
        for (keyword, book), count in SAMPLE_COUNTS.items()
        if (keywords is None or keyword in keywords) and title.lower() in book.lower()
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, only()),
        # Empty parameters do not filter.
        ({"keywords": "", "title": ""}, only()),
        ({"keywords": "love"}, only({"love"})),
        ({"keywords": "love,hate"}, only({"love", "hate"})),
        # Spaces and case in the list are forgiven; empty items ignored.
        ({"keywords": " HATE , ,"}, only({"hate"})),
        # Exact keywords: a prefix of one is not it, an unknown one has no counts.
        ({"keywords": "lov"}, {}),
        ({"keywords": "sadness"}, {}),
        # Title: substring, case-insensitive, beyond ASCII.
        ({"title": "frankenstein"}, only(title="Frankenstein")),
        ({"title": "ÉMILE"}, only(title="Émile")),
        ({"title": "the"}, only(title="the")),
        ({"keywords": "hate", "title": "ADVENTURES"}, only({"hate"}, "adventures")),
        # No wildcards: % and _ are just characters.
        ({"title": "%"}, {}),
        ({"title": "_"}, {}),
        # Undecodable percent-escapes become U+FFFD and match nothing, rather than failing.
        ("title=%FF", {}),
    ],
)
async def test_stats_filters(
    crawled: RunningCrawler, params: str | dict[str, str], expected: dict[tuple[str, str], int]
) -> None:
    query: MultiMapping[str]
    if isinstance(params, str):
        response = await crawled.client.get(f"/stats?{params}")
        assert response.status == 200
        body = await response.json()
        query = URL(f"/stats?{params}").query
    else:
        body = await crawled.get_json("/stats", expected_status=200, **params)
        query = MultiDict(params)
    assert rows(body) == expected
    assert len(body) == len(expected)  # no duplicate rows
    # SQLite builds the HTTP body; it is exactly the rows the in-process client gets, in order.
    assert body == await crawled.crawler.stats(*parse_stats_query(query))


async def stats_body(store: CountStore, keywords: list[str], title: str, rows_per_page: int) -> bytes:
    """What GET /stats sends: the pages in brackets, commas between them."""
    async with aclosing(store.stats_json_pages(keywords, title, rows_per_page)) as pages:
        return b"[" + b",".join([page async for page in pages]) + b"]"


@pytest.mark.parametrize("rows_per_page", [2000, 5, 1])
async def test_http_stats_are_streamed_from_sqlite_not_built_in_python(
    crawled: RunningCrawler, monkeypatch: pytest.MonkeyPatch, rows_per_page: int
) -> None:
    # ~600k rows turned into dicts and json.dumps on the event loop stalled it for seconds;
    # one 50 MB body per request pinned 50 MB per client that did not read.
    expected = await crawled.crawler.stats(["love", "hate"], "")
    # The sample's 12 rows: in one page, in pages of 5 (the last one short), a row a page.
    monkeypatch.setattr(crawler_module, "ROWS_PER_PAGE", rows_per_page)

    async def python_rows(*args: Any) -> None:
        raise AssertionError("GET /stats built its rows in Python")

    monkeypatch.setattr(SqliteCountStore, "stats", python_rows)
    response = await crawled.client.get("/stats")
    assert response.status == 200 and response.headers["Content-Type"] == "application/json; charset=utf-8"
    # Chunked: a download cut short is visibly incomplete, never a shorter valid array.
    assert response.headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in response.headers
    body = await response.read()
    assert json.loads(body) == expected
    assert await crawled.get_json("/stats", keywords="nope") == []
    assert await crawled.get_json("/stats", title="no such book") == []
    response = await crawled.client.head("/stats")
    assert response.status == 200 and await response.read() == b""
    # The next request on the same connection is not confused by what HEAD did not send.
    assert json.loads(await (await crawled.client.get("/stats")).read()) == expected


async def test_stats_pages_are_stats_for_awkward_titles_and_ties(open_count_store: OpenCountStore) -> None:
    # JSON escaping (quotes, backslashes, control characters, beyond the BMP) and every tie-break,
    # from a file (a connection of its own), in memory (the store's connection), and PostgreSQL
    # (its own JSON, its own collation: the same bytes' order as SQLite's is asked for).
    titles = [
        'Say "hi"\\',
        "Tab\there\nand a newline",
        "Émile 😀 愛",
        "\x00\x1f\u2028",
        "same",
        "same",
        "A",
    ]
    store = await open_count_store()
    for book_id, title in enumerate(titles, start=1):
        counts = {"love": 2, "hate": 2, "joy": 1} if book_id % 2 else {"love": 1, "hate": 2}
        book = CountedBook(book_id, title, f"https://g.org/{book_id}.txt", None)
        await store.save_counts(book, ["love", "hate", "joy"], counts, 1)
    queries = [(["love", "hate", "joy"], ""), (["hate"], ""), (["love", "joy"], "é"), ([], "")]
    for keywords, title in queries:
        expected = await store.stats(keywords, title)
        for rows_per_page in (1, 4, 100):
            assert json.loads(await stats_body(store, keywords, title, rows_per_page)) == expected
    everything = await store.stats(["love", "hate", "joy"], "")
    assert len(everything) == 18
    # Count ascending, then title by code point ("A" < "Say..." < "Tab..." < "same" < "É..."), keyword, id.
    order = [(row["Count"], row["BookTitle"], row["Keyword"]) for row in everything]
    assert order == sorted(order)
    assert await stats_body(store, ["love"], "no such title", 10) == b"[]"
    assert await stats_body(store, [], "", 10) == b"[]"


async def test_a_download_is_one_snapshot_while_the_crawl_writes(open_count_store: OpenCountStore) -> None:
    # A book recounted between two pages must not show up twice (old and new count) or vanish.
    store = await open_count_store()
    for book_id in range(1, 21):
        book = CountedBook(book_id, f"Book {book_id}", None, None)
        await store.save_counts(book, ["love"], {"love": book_id}, 1)
    expected = await store.stats(["love"], "")
    async with aclosing(store.stats_json_pages(["love"], "", 3)) as pages:
        first = await anext(pages)
        # Book 1 (already sent) now counts more than any other; book 20 (not yet sent) is gone.
        await store.save_counts(CountedBook(1, "Book 1", None, None), ["love"], {"love": 99}, 1)
        await store.save_counts(CountedBook(20, "Book 20", None, None), ["love"], {}, 1)
        rest = [page async for page in pages]
    assert json.loads(b"[" + b",".join([first, *rest]) + b"]") == expected
    last = (await store.stats(["love"], ""))[-1]
    assert last == {"Keyword": "love", "BookTitle": "Book 1", "Count": 99}


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"keywords": "love"},
        {"keywords": "love,hate", "title": "frankenstein"},
        {"title": "ÉMILE"},
        {"keywords": "lov"},
    ],
)
async def test_totals_are_what_stats_sums_to(crawled: RunningCrawler, params: dict[str, str]) -> None:
    # The bot asks for totals; over a whole catalogue /stats is ~600k rows.
    # expected_status named: no key of params can be taken for it.
    stats = await crawled.get_json("/stats", expected_status=200, **params)
    totals = await crawled.get_json("/stats/totals", expected_status=200, **params)
    expected: dict[str, int] = {}
    for row in stats:
        expected[row["Keyword"]] = expected.get(row["Keyword"], 0) + row["Count"]
    assert totals == {"totals": expected, "books": len({row["BookTitle"] for row in stats})}


async def test_totals_refuse_bad_queries(crawled: RunningCrawler) -> None:
    response = await crawled.client.get("/stats/totals", params=[("title", "a"), ("title", "b")])
    assert response.status == 400
    assert (await response.json())["error"] == "give title at most once"


async def test_stats_are_sorted_by_count_ascending_with_the_original_keys(crawled: RunningCrawler) -> None:
    body = await crawled.get_json("/stats")
    assert all(set(row) == {"Keyword", "BookTitle", "Count"} for row in body)
    counts = [row["Count"] for row in body]
    assert counts == sorted(counts) and counts[0] < counts[-1]


async def test_repeated_keywords_parameters_add_up(crawled: RunningCrawler) -> None:
    response = await crawled.client.get("/stats?keywords=love&keywords=hate")
    assert rows(await response.json()) == only({"love", "hate"})


@pytest.mark.parametrize(
    "query",
    [
        # Two titles: which one did they mean?
        "title=a&title=b",
        "title=" + "x" * 1001,
        "keywords=" + ",".join(f"k{i}" for i in range(101)),
        "keywords=" + "k" * 201,
    ],
)
async def test_bad_stats_queries_are_400_json(crawled: RunningCrawler, query: str) -> None:
    response = await crawled.client.get(f"/stats?{query}")
    assert response.status == 400
    assert "error" in await response.json()


async def test_health_readiness_status(crawled: RunningCrawler) -> None:
    assert await crawled.get_json("/healthz") == {"status": "ok"}
    ready = await crawled.get_json("/readyz")
    assert ready["status"] == "ready"
    assert ready["checks"]["database"]["ok"] and ready["checks"]["crawl"]["ok"]
    status = await crawled.get_json("/status")
    assert status["state"] == "waiting"
    assert status["keywords"] == ["love", "hate"]
    assert (status["books_counted"], status["books_skipped"], status["pages_done"]) == (7, 1, 3)
    assert status["last_error"] is None and status["current_book"] is None
    assert (await crawled.get_json("/"))["service"] == "synergychat-crawler"
    response = await crawled.client.get("/nope")
    assert response.status == 404 and "error" in await response.json()


async def test_a_crawler_that_has_not_started_is_not_ready(gutendex: FakeGutendex, tmp_path: Path) -> None:
    crawler = make_crawler(crawler_settings(tmp_path, gutendex.base_url))
    with pytest.raises(CrawlerNotReady):
        await crawler.check()
    with pytest.raises(CrawlerNotReady):
        await crawler.stats([], "")
    assert (await crawler.status())["state"] == "starting"
    with pytest.raises(CrawlerUnavailable):
        await InProcessCrawlerClient(crawler).stats([], "")


async def test_a_broken_database_fails_readiness_and_stats_honestly(crawled: RunningCrawler) -> None:
    store = crawled.crawler._store
    assert store is not None
    # The database goes away under the running crawler (a lost volume, say).
    await store.close()
    response = await crawled.client.get("/readyz")
    assert response.status == 503
    body = await response.json()
    assert body["checks"]["database"]["ok"] is False
    response = await crawled.client.get("/stats")
    assert response.status == 503 and "unavailable" in (await response.json())["error"]


@pytest.mark.parametrize("transport", ["in-process", "http"])
async def test_both_api_transports_read_the_same_answers(crawled: RunningCrawler, transport: str) -> None:
    client: Any
    if transport == "http":
        client = HttpCrawlerClient(str(crawled.client.server.make_url("/")), 5.0)
        await client.start()
    else:
        client = InProcessCrawlerClient(crawled.crawler)
    try:
        await client.health()
        assert rows(await client.stats(["love"], "pride")) == only({"love"}, "pride")
        assert rows(await client.stats([], "")) == SAMPLE_COUNTS
        status = await client.status()
        assert (status.state, status.books_counted, status.pages_done) == ("waiting", 7, 3)
    finally:
        if transport == "http":
            await client.close()


async def test_under_role_all_the_crawler_is_mounted_at_crawler(
    gutendex: FakeGutendex, tmp_path: Path
) -> None:
    settings = RoleSettings(
        web=WebSettings(web_port=8080, api_url="/api"),
        api=ApiSettings(api_port=8080, api_db_filepath="", crawler_base_url=""),
        crawler=crawler_settings(tmp_path / "counts", gutendex.base_url),
    )
    client = TestClient(ChatTestServer(build_app(Role.ALL, settings)))
    await client.start_server()
    try:
        response = await client.get("/crawler/healthz")
        assert await response.json() == {"status": "ok"}
        for _ in range(500):
            status = await (await client.get("/crawler/status")).json()
            if status["state"] == "waiting":
                break
            await asyncio.sleep(0.02)
        assert status["state"] == "waiting", status
        response = await client.get("/crawler/stats", params={"keywords": "love", "title": "gatsby"})
        assert rows(await response.json()) == only({"love"}, "gatsby")
        response = await client.post(
            "/api/messages", json={"AuthorUsername": "x", "Text": "/stats keywords=love"}
        )
        assert response.status == 201
        reply = (await response.json())[-1]
        total = sum(count for (keyword, _), count in SAMPLE_COUNTS.items() if keyword == "love")
        assert reply["AuthorUsername"] == "crawler-bot"
        assert reply["Text"].startswith(f"Beep boop! I have found {total} matches")
    finally:
        await client.close()
