"""The crawl against a fake catalogue: counting, faults, resuming, passes, keyword changes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from synergychat.crawler import CrawlStopped
from synergychat.storage import SqliteCountStore

from . import fake_gutendex as faults
from .conftest import (
    SAMPLE_COUNTS,
    SAMPLE_TEXT_FILES,
    RunningCrawler,
    closed_port_url,
    crawler_settings,
    rows,
    sample_books,
)
from .fake_gutendex import FakeBook, FakeGutendex

StartCrawler = Callable[..., Awaitable[RunningCrawler]]
ServeFake = Callable[..., Awaitable[FakeGutendex]]


async def test_counts_the_whole_catalogue(gutendex: FakeGutendex, start_crawler: StartCrawler) -> None:
    running = await start_crawler(source_url=gutendex.base_url)
    status = await running.wait_until_waiting()

    assert rows(await running.crawler.stats([], "")) == SAMPLE_COUNTS
    assert status["books_counted"] == 7
    # Shakespeare has no plain text.
    assert status["books_skipped"] == 1
    assert status["pages_done"] == 3
    assert status["next_page_url"] is None
    assert status["last_error"] is None
    assert status["last_success_at"] is not None
    # Each text read once; html and the zip beside a plain text never.
    assert gutendex.served == {name: 1 for name in SAMPLE_TEXT_FILES}


async def test_passing_faults_are_retried(gutendex: FakeGutendex, start_crawler: StartCrawler) -> None:
    # One of each passing fault on pages and books; FAST_RETRY allows 4 attempts.
    gutendex.retry_after = "0"
    gutendex.fail("/books/", faults.HTTP_500, faults.TIMEOUT)
    gutendex.fail("/books/?page=2", faults.HTTP_429, faults.MALFORMED, faults.TRUNCATE)
    gutendex.fail("/books/?page=3", faults.DROP)
    gutendex.fail("/files/84.txt", faults.TIMEOUT, faults.HTTP_503)
    gutendex.fail("/files/1342.txt", faults.TRUNCATE, faults.TRUNCATE)
    # aiohttp itself retries a dropped keep-alive connection once; the second drop is ours.
    gutendex.fail("/files/11.txt", faults.DROP, faults.DROP, faults.HTTP_429)
    gutendex.fail("/files/2701.zip", faults.TRUNCATE)
    running = await start_crawler(source_url=gutendex.base_url)
    status = await running.wait_until_waiting()

    assert rows(await running.crawler.stats([], "")) == SAMPLE_COUNTS
    assert status["books_skipped"] == 1 and status["last_error"] is None
    assert gutendex.requests["/books/?page=2"] == 4
    assert gutendex.requests["/files/84.txt"] == 3
    assert gutendex.requests["/files/1342.txt"] == 3
    assert gutendex.requests["/files/11.txt"] == 4
    assert gutendex.requests["/books/?page=3"] == 2
    # A truncated download is never counted: only whole bodies were.
    assert gutendex.served == {name: 1 for name in SAMPLE_TEXT_FILES}


async def test_a_book_that_keeps_failing_is_skipped_and_tried_next_pass(
    gutendex: FakeGutendex, start_crawler: StartCrawler
) -> None:
    gutendex.fail("/files/1661.txt", *[faults.HTTP_503] * 4)
    running = await start_crawler(source_url=gutendex.base_url, rescan_after_seconds=0.2)
    status = await running.wait_for(lambda s: s["pass"] == 1 and s["state"] == "waiting")

    assert status["books_skipped"] == 2
    assert "1661" in status["last_error"]["message"] and "503" in status["last_error"]["message"]
    assert ("love", "The Adventures of Sherlock Holmes") not in rows(await running.crawler.stats([], ""))

    # The next pass looks at it again (the fault is gone) and counts nothing twice.
    status = await running.wait_for(lambda s: s["pass"] == 2 and s["state"] == "waiting")
    assert rows(await running.crawler.stats([], "")) == SAMPLE_COUNTS
    assert status["books_skipped"] == 1
    assert gutendex.served == {name: 1 for name in SAMPLE_TEXT_FILES}


async def test_lasting_faults_skip_the_book_at_once(
    serve_fake: ServeFake, start_crawler: StartCrawler
) -> None:
    books = [
        FakeBook.plain(1, "Refused", b""),
        FakeBook.plain(2, "Gone", b""),
        FakeBook.plain(3, "Too big", "love\n" * 100),
        FakeBook(4, "Broken zip", {"text/plain": "4.zip"}, {"4.zip": b"PK\x03\x04 not really a zip"}),
        FakeBook.plain(5, "Fine", "love\n"),
    ]
    books[0].formats = {"text/plain; charset=utf-8": closed_port_url("/1.txt")}
    books[1].files.clear()
    gutendex = await serve_fake(books, page_size=10)
    running = await start_crawler(source_url=gutendex.base_url, max_book_bytes=200)
    status = await running.wait_until_waiting()

    assert rows(await running.crawler.stats([], "")) == {("love", "Fine"): 1}
    assert status["books_skipped"] == 4
    # 404 is lasting: asked once, not four times.
    assert gutendex.requests["/files/2.txt"] == 1
    assert gutendex.requests["/files/3.txt"] == 1


async def test_a_page_that_keeps_failing_is_tried_again_later(
    gutendex: FakeGutendex, start_crawler: StartCrawler
) -> None:
    # Two rounds of four failed attempts; the crawler neither stops nor skips the page.
    gutendex.fail("/books/?page=2", *[faults.HTTP_500] * 8)
    running = await start_crawler(source_url=gutendex.base_url)
    status = await running.wait_until_waiting()

    assert rows(await running.crawler.stats([], "")) == SAMPLE_COUNTS
    assert gutendex.requests["/books/?page=2"] == 9
    assert "page=2" in status["last_error"]["message"]
    await running.crawler.check()


async def test_a_refused_catalogue_is_retried_until_it_answers(
    serve_fake: ServeFake, start_crawler: StartCrawler, caplog: pytest.LogCaptureFixture
) -> None:
    url = closed_port_url("")
    running = await start_crawler(source_url=url)
    status = await running.wait_for(lambda s: s["last_error"] is not None)
    assert status["state"] in ("crawling", "retrying")
    assert "ClientConnectorError" in status["last_error"]["message"]
    # Unreachable is not broken: the crawler stays ready.
    await running.crawler.check()

    # The catalogue comes up on that port: the crawl carries on by itself.
    await serve_fake(port=int(url.rsplit(":", 1)[1]))
    await running.wait_until_waiting()
    assert rows(await running.crawler.stats([], "")) == SAMPLE_COUNTS


async def test_restart_resumes_on_the_same_page(
    gutendex: FakeGutendex, start_crawler: StartCrawler, tmp_path: Path
) -> None:
    # Freeze the crawl on page 2, after page 1's books.
    gate = gutendex.hold("/books/?page=2")
    first = await start_crawler(source_url=gutendex.base_url)
    await first.wait_for(lambda s: s["pages_done"] == 1 and gutendex.requests["/books/?page=2"] == 1)
    await first.stop()

    gate.set()
    second = await start_crawler(source_url=gutendex.base_url)
    status = await second.wait_until_waiting()

    assert rows(await second.crawler.stats([], "")) == SAMPLE_COUNTS
    # Page 1 was not read again, and no book was downloaded twice.
    assert gutendex.requests["/books/"] == 1
    assert status["pages_done"] == 3
    assert gutendex.served == {name: 1 for name in SAMPLE_TEXT_FILES}


async def test_restart_in_the_middle_of_a_page_counts_no_book_twice(
    gutendex: FakeGutendex, start_crawler: StartCrawler
) -> None:
    # Stop while the third book of page 1 is downloading: two are counted, the page is not done.
    gate = gutendex.hold("/files/11.txt")
    first = await start_crawler(source_url=gutendex.base_url)
    status = await first.wait_for(lambda s: gutendex.requests["/files/11.txt"] == 1)
    assert status["books_counted"] == 2 and status["pages_done"] == 0
    await first.stop()
    gate.set()

    second = await start_crawler(source_url=gutendex.base_url)
    await second.wait_until_waiting()

    assert rows(await second.crawler.stats([], "")) == SAMPLE_COUNTS
    # Page 1 is read again, but its two counted books are not downloaded again.
    assert gutendex.requests["/books/"] == 2
    assert gutendex.served["84.txt"] == 1 and gutendex.served["1342.txt"] == 1


async def test_new_books_are_found_on_the_next_pass(
    gutendex: FakeGutendex, start_crawler: StartCrawler
) -> None:
    running = await start_crawler(source_url=gutendex.base_url, rescan_after_seconds=0.2)
    await running.wait_for(lambda s: s["pass"] == 1 and s["state"] == "waiting")
    gutendex.books.insert(0, FakeBook.plain(99999, "A New Book", "love\nlove\n"))

    status = await running.wait_for(lambda s: s["pass"] == 2 and s["state"] == "waiting")
    assert rows(await running.crawler.stats([], "new book")) == {("love", "A New Book"): 2}
    assert status["books_counted"] == 8
    # Pages shifted by one book: everything was seen again, nothing downloaded twice.
    assert gutendex.served == {name: 1 for name in [*SAMPLE_TEXT_FILES, "99999.txt"]}


async def test_a_restart_during_the_wait_keeps_waiting(
    gutendex: FakeGutendex, start_crawler: StartCrawler
) -> None:
    first = await start_crawler(source_url=gutendex.base_url)
    await first.wait_until_waiting()
    await first.stop()
    second = await start_crawler(source_url=gutendex.base_url)
    status = await second.wait_until_waiting()
    # Still pass 1: the restart did not walk the catalogue again.
    assert status["pass"] == 1 and gutendex.requests["/books/"] == 1


async def test_new_keywords_recount_old_books(
    gutendex: FakeGutendex, start_crawler: StartCrawler, tmp_path: Path
) -> None:
    db = tmp_path / "counts"
    first = await start_crawler(crawler_settings(db, gutendex.base_url, ["love"]))
    await first.wait_until_waiting()
    await first.stop()

    # "hate" is new: every counted book is downloaded once more, first, and recounted.
    second = await start_crawler(crawler_settings(db, gutendex.base_url, ["love", "hate"]))
    status = await second.wait_until_waiting()
    assert rows(await second.crawler.stats([], "")) == SAMPLE_COUNTS
    assert status["books_to_recount"] == 0
    assert gutendex.served == {name: 2 for name in SAMPLE_TEXT_FILES}
    assert gutendex.requests["/books/"] == 1
    await second.stop()

    # Fewer keywords: nothing to download; the dropped keyword is no longer answered.
    third = await start_crawler(crawler_settings(db, gutendex.base_url, ["hate"]))
    await third.wait_until_waiting()
    assert rows(await third.crawler.stats([], "")) == {
        k: v for k, v in SAMPLE_COUNTS.items() if k[0] == "hate"
    }
    assert rows(await third.crawler.stats(["love"], "")) == {}
    assert gutendex.served == {name: 2 for name in SAMPLE_TEXT_FILES}


async def test_a_new_source_url_starts_at_its_first_page(
    serve_fake: ServeFake, start_crawler: StartCrawler, tmp_path: Path
) -> None:
    db = tmp_path / "counts"
    old = await serve_fake()
    old.hold("/books/?page=2")
    first = await start_crawler(crawler_settings(db, old.base_url))
    await first.wait_for(lambda s: s["pages_done"] == 1)
    await first.stop()

    new = await serve_fake()
    second = await start_crawler(crawler_settings(db, new.base_url))
    status = await second.wait_until_waiting()
    assert new.requests["/books/"] == 1 and status["pass"] == 2
    # Books are Gutenberg ids wherever they are listed: page 1's books are not read again.
    assert sum(new.served.values()) == len(SAMPLE_TEXT_FILES) - 3
    assert rows(await second.crawler.stats([], "")) == SAMPLE_COUNTS


async def test_a_crashed_crawl_is_logged_and_fails_readiness(
    gutendex: FakeGutendex,
    start_crawler: StartCrawler,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(SqliteCountStore, "save_counts", broken)
    running = await start_crawler(source_url=gutendex.base_url)
    status = await running.wait_for(lambda s: s["state"] == "failed")

    assert "disk on fire" in status["last_error"]["message"]
    assert any("the crawl stopped" in r.message and r.levelno == logging.ERROR for r in caplog.records)
    with pytest.raises(CrawlStopped, match="disk on fire"):
        await running.crawler.check()
    body = await running.get_json("/readyz", expected_status=503)
    assert body["checks"]["crawl"]["ok"] is False and body["checks"]["database"]["ok"] is True
    # What was counted can still be served.
    assert await running.get_json("/stats") == []


async def test_memory_stays_bounded_on_a_large_book(
    serve_fake: ServeFake, start_crawler: StartCrawler
) -> None:
    import tracemalloc

    line = b"It is a truth universally acknowledged, that a single man in want of love\r\n"
    piece = line * 800  # ~60 KB

    def six_megabytes() -> Any:
        for _ in range(6 * 1024 * 1024 // len(piece) + 1):
            yield piece

    lines = (6 * 1024 * 1024 // len(piece) + 1) * 800
    gutendex = await serve_fake(
        [FakeBook(1, "Big", {"text/plain; charset=utf-8": "1.txt"}, {"1.txt": six_megabytes})]
    )
    tracemalloc.start()
    try:
        running = await start_crawler(source_url=gutendex.base_url)
        await running.wait_until_waiting()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rows(await running.crawler.stats([], "")) == {("love", "Big"): lines}
    # Server and crawler together, far below the 6 MB text.
    assert peak < 3 * 1024 * 1024


def test_sample_books_cover_each_format_case() -> None:
    # Guards the fixture itself: the faults tests rely on these shapes being present.
    books = {book.id: book for book in sample_books()}
    assert any(key.endswith("us-ascii") for key in books[1342].formats)
    assert all(not key.startswith("text/plain") for key in books[100].formats)
    assert list(books[2701].files) == ["2701.zip"]


async def test_a_failed_recount_keeps_the_old_counts(
    gutendex: FakeGutendex, start_crawler: StartCrawler, tmp_path: Path
) -> None:
    db = tmp_path / "counts"
    first = await start_crawler(crawler_settings(db, gutendex.base_url, ["love"]))
    await first.wait_until_waiting()
    await first.stop()

    gutendex.fail("/files/84.txt", faults.NOT_FOUND)
    second = await start_crawler(crawler_settings(db, gutendex.base_url, ["love", "hate"]))
    status = await second.wait_until_waiting()
    counts = rows(await second.crawler.stats([], "frankenstein"))
    # Frankenstein's love count survives; its hate count is simply not known yet.
    assert counts == {("love", "Frankenstein; Or, The Modern Prometheus"): 3}
    assert status["books_counted"] == 7 and status["books_to_recount"] == 0
    assert "84" in status["last_error"]["message"]
    await second.stop()

    # The next start tries it again.
    third = await start_crawler(crawler_settings(db, gutendex.base_url, ["love", "hate"]))
    await third.wait_until_waiting()
    assert rows(await third.crawler.stats([], "")) == SAMPLE_COUNTS


async def test_requests_are_spaced_by_the_delay(
    gutendex: FakeGutendex, tmp_path: Path, start_crawler: StartCrawler
) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        if seconds > 60:  # the wait between passes (an hour): stay there
            await asyncio.Event().wait()
        waits.append(seconds)

    settings = crawler_settings(tmp_path / "counts", gutendex.base_url).model_copy(
        update={"crawler_delay_seconds": 30.0}
    )
    running = await start_crawler(settings, sleep=sleep)
    await running.wait_until_waiting()
    # 3 pages and 7 texts: a polite pause before each request but the first.
    requests = sum(gutendex.requests.values())
    assert requests == 10
    assert len(waits) == requests - 1
    assert all(29 < wait <= 30 for wait in waits)


@pytest.mark.parametrize(
    "loop_to",
    [
        3,  # the last page's next is itself
        1,  # the last page's next is the first page: a cycle through the whole catalogue
    ],
)
async def test_a_catalogue_that_loops_ends_the_pass(
    gutendex: FakeGutendex, start_crawler: StartCrawler, caplog: pytest.LogCaptureFixture, loop_to: int
) -> None:
    # Followed blindly (delay 0) this re-read the same pages thousands of times a second, forever.
    gutendex.next_pages[3] = gutendex.page_path(loop_to)
    running = await start_crawler(source_url=gutendex.base_url, rescan_after_seconds=0.3)
    status = await running.wait_for(lambda s: s["pass"] == 1 and s["state"] == "waiting", timeout=5)

    assert rows(await running.crawler.stats([], "")) == SAMPLE_COUNTS
    assert status["pages_done"] == 3 and status["next_page_url"] is None
    assert [gutendex.requests[gutendex.page_path(n)] for n in (1, 2, 3)] == [1, 1, 1]
    message = status["last_error"]["message"]
    assert "CRAWLER_SOURCE_URL" in message and "loops" in message
    assert gutendex.page_path(loop_to) in message
    assert any("CRAWLER_SOURCE_URL" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    await running.crawler.check()

    # The next pass walks the catalogue again (what it saw last pass is forgotten) and stops the same way.
    status = await running.wait_for(lambda s: s["pass"] == 2 and s["state"] == "waiting", timeout=5)
    assert [gutendex.requests[gutendex.page_path(n)] for n in (1, 2, 3)] == [2, 2, 2]
    assert status["pages_done"] == 6
    assert gutendex.served == {name: 1 for name in SAMPLE_TEXT_FILES}


async def test_a_restart_inside_a_looping_catalogue_still_ends_the_pass(
    gutendex: FakeGutendex, start_crawler: StartCrawler
) -> None:
    # Stopped on page 3, whose next is page 2: the new process has not seen page 2 in this pass.
    gutendex.next_pages[3] = gutendex.page_path(2)
    gate = gutendex.hold("/books/?page=3")
    first = await start_crawler(source_url=gutendex.base_url)
    await first.wait_for(lambda s: gutendex.requests["/books/?page=3"] == 1)
    await first.stop()
    gate.set()

    second = await start_crawler(source_url=gutendex.base_url)
    status = await second.wait_for(lambda s: s["state"] == "waiting", timeout=5)
    # Page 3 read whole this time, page 2 once more (not remembered across the restart), then the loop.
    assert gutendex.requests["/books/?page=3"] == 2 and gutendex.requests["/books/?page=2"] == 2
    assert "loops" in status["last_error"]["message"]
    assert rows(await second.crawler.stats([], "")) == SAMPLE_COUNTS


@pytest.mark.parametrize(
    ("fault", "got"),
    [(faults.HTML, "got text/html"), (faults.NOT_A_PAGE, "got JSON without a results list")],
)
async def test_a_source_that_is_not_a_catalogue_says_so(
    gutendex: FakeGutendex,
    start_crawler: StartCrawler,
    caplog: pytest.LogCaptureFixture,
    fault: str,
    got: str,
) -> None:
    # Two rounds of four attempts (FAST_RETRY) answer 200 with something else; then the catalogue.
    gutendex.fail("/books/", *[fault] * 8)
    running = await start_crawler(source_url=gutendex.base_url)
    status = await running.wait_for(lambda s: s["last_error"] is not None)

    message = status["last_error"]["message"]
    assert f"{gutendex.base_url}/books/ is not a Gutendex catalogue ({got})" in message
    assert f"check CRAWLER_SOURCE_URL ({gutendex.base_url})" in message
    assert any(message in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    # A misconfiguration that can be fixed while we wait: still ready, still retrying.
    await running.crawler.check()
    await running.wait_until_waiting()
    assert gutendex.requests["/books/"] == 9
    assert rows(await running.crawler.stats([], "")) == SAMPLE_COUNTS
