"""A download that trickles: abandoned within its deadline, tried again later, the crawl goes on.

A catalogue serving a book at 1 byte/s never trips a read timeout (bytes keep
coming) and held the crawl on that book for good. Every download now has a
deadline (CRAWLER_DOWNLOAD_TIMEOUT_SECONDS) and a minimum rate
(CRAWLER_DOWNLOAD_MIN_BYTES_PER_SECOND, after a grace period).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from synergychat.gutendex import Timeouts

from . import fake_gutendex as faults
from .conftest import RunningCrawler, crawler_settings, rows
from .fake_gutendex import FakeBook, FakeGutendex

StartCrawler = Callable[..., Awaitable[RunningCrawler]]
ServeFake = Callable[..., Awaitable[FakeGutendex]]

# A read timeout well above the trickle's one byte a second: only the pace can stop it.
PATIENT_READS = Timeouts(connect=2.0, read=10.0, page=10.0, rate_grace=0.3)


def three_books_a_page() -> list[FakeBook]:
    return [
        FakeBook.plain(1, "First", "love\n"),
        FakeBook.plain(2, "Slow", "love\nlove\n"),
        FakeBook.plain(3, "Third", "love\nlove\nlove\n"),
        FakeBook.plain(4, "Next page", "hate\n"),
    ]


async def start_paced(
    start_crawler: StartCrawler, tmp_path: Path, gutendex: FakeGutendex, **limits: Any
) -> RunningCrawler:
    # Requests 0.1 s apart: book 3, page 2 and book 4 come at least 0.3 s after book 2 is
    # given up, past its try-later time of 0.2 s (an hour by default).
    limits = {"crawler_delay_seconds": 0.1, **limits}
    settings = crawler_settings(tmp_path / "counts", gutendex.base_url).model_copy(update=limits)
    return await start_crawler(settings, timeouts=PATIENT_READS, try_later_seconds=0.2)


async def test_a_book_at_one_byte_a_second_is_abandoned_and_tried_again_later(
    serve_fake: ServeFake, start_crawler: StartCrawler, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "synergychat")
    gutendex = await serve_fake(three_books_a_page(), page_size=3)
    gutendex.fail("/files/2.txt", faults.TRICKLE)
    running = await start_paced(start_crawler, tmp_path, gutendex, crawler_download_min_bytes_per_second=1024)
    status = await running.wait_until_waiting()

    # Given up on at once (not retried on the spot), and the crawl went on to book 3.
    messages = [record.getMessage() for record in caplog.records]
    skipped = next(message for message in messages if message.startswith("book 2 (Slow) skipped"))
    assert "too slow: " in skipped and "under 1024 bytes/s" in skipped and "trying it again in" in skipped
    order = [message.split(" (")[0] for message in messages if message.startswith("book ")]
    assert order[:3] == ["book 1", "book 2", "book 3"] and order[3:].count("book 2") == 2, order
    # The connection was closed, not left trickling (the fake notices at its next byte).
    await running.wait_for(lambda _: gutendex.abandoned["/files/2.txt"] == 1, timeout=5)
    # Tried again later, within the pass, and counted: the fault was gone.
    assert gutendex.requests["/files/2.txt"] == 2
    assert rows(await running.crawler.stats([], "")) == {
        ("love", "First"): 1,
        ("love", "Slow"): 2,
        ("love", "Third"): 3,
        ("hate", "Next page"): 1,
    }
    assert (status["books_counted"], status["books_skipped"], status["books_to_try_later"]) == (4, 0, 0)
    # A trickle is the server's pace, not an unreachable catalogue.
    assert status["catalogue"]["reachable"] is True
    assert status["last_error"]["message"] == skipped


async def test_a_download_past_its_deadline_is_abandoned_whatever_its_pace(
    serve_fake: ServeFake, start_crawler: StartCrawler, tmp_path: Path
) -> None:
    gutendex = await serve_fake(three_books_a_page(), page_size=3)
    gutendex.fail("/files/2.txt", faults.TRICKLE)
    # No minimum rate: only the deadline can end the trickle.
    running = await start_paced(
        start_crawler,
        tmp_path,
        gutendex,
        crawler_download_min_bytes_per_second=0,
        crawler_download_timeout_seconds=1.5,
    )
    status = await running.wait_for(lambda s: s["last_error"] is not None)
    message = status["last_error"]["message"]
    assert message.startswith("book 2 (Slow) skipped: too slow: not finished after 1.5 s")
    status = await running.wait_until_waiting()
    # Tried again when it was due (at the next page or book), and counted.
    assert ("love", "Slow") in rows(await running.crawler.stats([], ""))
    assert status["books_counted"] == 4


async def test_a_trickling_catalogue_page_is_tried_again_like_any_failing_page(
    serve_fake: ServeFake, start_crawler: StartCrawler, tmp_path: Path
) -> None:
    gutendex = await serve_fake(three_books_a_page(), page_size=3)
    gutendex.fail("/books/?page=2", faults.TRICKLE)
    running = await start_paced(start_crawler, tmp_path, gutendex)
    status = await running.wait_until_waiting()
    assert status["books_counted"] == 4
    assert gutendex.requests["/books/?page=2"] == 2
    assert "page=2" in status["last_error"]["message"] and "too slow" in status["last_error"]["message"]
