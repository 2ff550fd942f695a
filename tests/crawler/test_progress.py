"""``/status``'s ``progress``: books done of the catalogue's own ``count``, the rate, the time left."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from synergychat import crawl
from synergychat.crawl_progress import RateMeter, describe_progress

from .conftest import RunningCrawler, crawler_settings
from .fake_gutendex import FakeBook, FakeGutendex

StartCrawler = Callable[..., Awaitable[RunningCrawler]]
ServeFake = Callable[..., Awaitable[FakeGutendex]]
# The sample catalogue: 8 books, 7 with a plain text, Shakespeare without (skipped).
SAMPLE_BOOKS = 8


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def no_delay(seconds: float) -> None:
    """CRAWLER_DELAY_SECONDS takes no time (the fake clock says what passed); the hour
    between passes is waited for real, so the crawl stays waiting."""
    if seconds > 30:
        await asyncio.sleep(seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The crawl's rate is measured on this clock (the crawl itself runs at full speed)."""
    fake = FakeClock()
    monkeypatch.setattr(crawl, "RateMeter", functools.partial(RateMeter, clock=fake))
    return fake


# ---- the rate, on its own ----


def test_the_rate_is_unknown_until_measured_then_falls_to_zero_when_idle() -> None:
    clock = FakeClock()
    meter = RateMeter(600, clock)
    assert meter.per_minute(quiet_seconds=120) is None
    meter.record(10)
    clock.now += 60
    # Nothing done yet, too soon to call it idle.
    assert meter.per_minute(quiet_seconds=120) is None
    meter.record(12)
    assert meter.per_minute(quiet_seconds=120) == pytest.approx(2.0)
    clock.now += 60
    meter.record(14)
    assert meter.per_minute(quiet_seconds=120) == pytest.approx(2.0)
    # Idle: the window slides past the last book; not the last rate forever.
    clock.now += 300
    assert meter.per_minute(quiet_seconds=120) == pytest.approx(4 * 60 / 420)
    clock.now += 601
    assert meter.per_minute(quiet_seconds=120) == 0.0


def test_the_rate_is_measured_over_the_window_only() -> None:
    clock = FakeClock()
    meter = RateMeter(600, clock)
    meter.record(0)
    for _ in range(60):  # an hour at 10 books a minute...
        clock.now += 60
        meter.record(meter_total := int(clock.now - 1000) // 6)
    for _ in range(10):  # ...then ten minutes at 1 a minute
        clock.now += 60
        meter_total += 1
        meter.record(meter_total)
    assert meter.per_minute(quiet_seconds=120) == pytest.approx(1.0)


def test_fewer_books_than_before_starts_the_measure_again() -> None:
    clock = FakeClock()
    meter = RateMeter(600, clock)
    meter.record(100)
    clock.now += 60
    meter.record(50)
    clock.now += 60
    meter.record(53)
    assert meter.per_minute(quiet_seconds=120) == pytest.approx(3.0)


# ---- the progress object, on its own ----


@pytest.mark.parametrize(
    ("done", "total", "percent"),
    [
        (1234, 75000, 1.6),
        # Rounded down: a book left is never 100.0 %.
        (74999, 75000, 99.9),
        (75000, 75000, 100.0),
        # Books the store has that the catalogue no longer lists: never past 100.
        (80, 75, 100.0),
        # An empty catalogue is wholly read.
        (0, 0, 100.0),
        (0, 75000, 0.0),
    ],
)
def test_percent(done: int, total: int, percent: float) -> None:
    assert describe_progress("crawling", done, total, 2.0, 30)["percent"] == percent


def test_eta_is_the_books_left_at_the_rate_and_the_delay_bounds_the_rate() -> None:
    progress = describe_progress("crawling", 1000, 1600, 1.5, 30)
    assert progress == {
        "books_done": 1000,
        "books_total": 1600,
        "percent": 62.5,
        "books_per_minute": 1.5,
        "eta_seconds": 600 / 1.5 * 60,
    }
    # Measured faster than one request every 30 s allows (books without text cost none):
    # the rate said, and the time left, are those the delay allows.
    fast = describe_progress("crawling", 1000, 1600, 12.0, 30)
    assert fast["books_per_minute"] == 2.0 and fast["eta_seconds"] == 600 / 2.0 * 60
    # No delay: no bound.
    assert describe_progress("crawling", 1000, 1600, 12.0, 0)["books_per_minute"] == 12.0


@pytest.mark.parametrize(
    ("state", "done", "total", "rate"),
    [
        ("crawling", 10, None, 2.0),  # the catalogue's size unknown
        ("crawling", 10, 100, None),  # the rate not measured yet
        ("retrying", 10, 100, 0.0),  # nothing moves
        ("waiting", 100, 100, 2.0),  # done
        ("failed", 10, 100, 2.0),  # it will not go on by itself
        ("stopped", 10, 100, 2.0),
    ],
)
def test_no_eta_when_unknown_or_done(state: str, done: int, total: int | None, rate: float | None) -> None:
    assert describe_progress(state, done, total, rate, 30)["eta_seconds"] is None


# ---- the crawl against the fake catalogue ----


async def test_progress_through_the_catalogue(
    gutendex: FakeGutendex, start_crawler: StartCrawler, clock: FakeClock, tmp_path: Path
) -> None:
    page_one = gutendex.hold("/books/")
    third_book = gutendex.hold("/files/11.txt")
    settings = crawler_settings(tmp_path / "counts", gutendex.base_url).model_copy(
        update={"crawler_delay_seconds": 30.0}
    )
    running = await start_crawler(settings, sleep=no_delay)
    status = await running.wait_for(lambda s: gutendex.requests["/books/"] == 1)
    # No page read yet: the catalogue's size, and so the share, are unknown.
    assert status["progress"] == {
        "books_done": 0,
        "books_total": None,
        "percent": None,
        "books_per_minute": None,
        "eta_seconds": None,
    }

    clock.now += 30
    page_one.set()
    status = await running.wait_for(lambda s: gutendex.requests["/files/11.txt"] == 1)
    # Two books in 30 s would be 4 a minute; one request every 30 s allows 2.
    assert status["progress"] == {
        "books_done": 2,
        "books_total": SAMPLE_BOOKS,
        "percent": 25.0,
        "books_per_minute": 2.0,
        "eta_seconds": 6 / 2.0 * 60,
    }
    # The rest of /status is as it was.
    assert status["books_counted"] == 2 and status["pages_done"] == 0 and status["state"] == "crawling"

    # Stuck on one book for longer than the window: the rate says so, no time is promised.
    clock.now += 601
    progress = (await running.get_json("/status"))["progress"]
    assert progress["books_per_minute"] == 0.0 and progress["eta_seconds"] is None
    assert progress["books_done"] == 2 and progress["percent"] == 25.0

    third_book.set()
    status = await running.wait_until_waiting()
    # The skipped book (no plain text) is done too: dealt with in this pass.
    assert status["books_counted"] == 7 and status["books_skipped"] == 1
    assert status["progress"]["books_done"] == SAMPLE_BOOKS
    assert status["progress"]["percent"] == 100.0 and status["progress"]["eta_seconds"] is None


async def test_the_catalogue_size_survives_a_restart_without_a_page_read(
    gutendex: FakeGutendex, start_crawler: StartCrawler
) -> None:
    first = await start_crawler(source_url=gutendex.base_url)
    await first.wait_until_waiting()
    await first.stop()
    # Restarted during the hour between passes: no page is read for that hour.
    second = await start_crawler(source_url=gutendex.base_url)
    status = await second.wait_until_waiting()
    assert gutendex.requests["/books/"] == 1
    assert status["progress"]["books_total"] == SAMPLE_BOOKS and status["progress"]["percent"] == 100.0


async def test_another_catalogue_forgets_the_old_size(
    serve_fake: ServeFake, start_crawler: StartCrawler, tmp_path: Path
) -> None:
    db = tmp_path / "counts"
    old = await serve_fake()
    first = await start_crawler(crawler_settings(db, old.base_url))
    await first.wait_until_waiting()
    await first.stop()

    # One book the store has (84), eleven it has not.
    new_books = [FakeBook.plain(n, f"Book {n}", "hate\n") for n in range(90000, 90011)]
    new = await serve_fake([FakeBook.plain(84, "Frankenstein", "love\n"), *new_books])
    page_one = new.hold("/books/")
    second = await start_crawler(crawler_settings(db, new.base_url))
    status = await second.wait_for(lambda s: new.requests["/books/"] == 1)
    assert status["progress"]["books_total"] is None
    page_one.set()
    status = await second.wait_until_waiting()
    # Every book the store holds counts as done, the old catalogue's too.
    assert status["progress"]["books_total"] == 12
    assert status["progress"]["books_done"] == SAMPLE_BOOKS + 11


async def test_books_to_recount_are_not_done(
    gutendex: FakeGutendex, start_crawler: StartCrawler, tmp_path: Path
) -> None:
    db = tmp_path / "counts"
    first = await start_crawler(crawler_settings(db, gutendex.base_url, ["love"]))
    await first.wait_until_waiting()
    await first.stop()

    # "hate" is new: the 7 counted books lack it until each is counted again.
    second_book = gutendex.hold("/files/1342.txt")
    second = await start_crawler(crawler_settings(db, gutendex.base_url, ["love", "hate"]))
    status = await second.wait_for(lambda s: gutendex.requests["/files/1342.txt"] == 2)
    to_recount = status["books_to_recount"]
    assert status["state"] == "recounting" and 0 < to_recount < 7
    # Done: the skipped book and those recounted so far. The size is kept from the first run.
    assert status["progress"]["books_done"] == SAMPLE_BOOKS - to_recount
    assert status["progress"]["books_total"] == SAMPLE_BOOKS
    assert status["progress"]["percent"] == (SAMPLE_BOOKS - to_recount) * 1000 // SAMPLE_BOOKS / 10
    second_book.set()
    status = await second.wait_until_waiting()
    assert status["progress"]["books_done"] == SAMPLE_BOOKS


async def test_a_second_pass_counts_what_is_covered(
    gutendex: FakeGutendex, start_crawler: StartCrawler
) -> None:
    running = await start_crawler(source_url=gutendex.base_url, rescan_after_seconds=0.2)
    await running.wait_for(lambda s: s["pass"] == 1 and s["state"] == "waiting")
    gutendex.books.insert(0, FakeBook.plain(99999, "A New Book", "love\nlove\n"))
    new_book = gutendex.hold("/files/99999.txt")

    # Pass 2 sees a larger catalogue; the books counted in pass 1 are still done.
    status = await running.wait_for(lambda s: gutendex.requests["/files/99999.txt"] == 1)
    assert status["pass"] == 2
    assert status["progress"]["books_total"] == SAMPLE_BOOKS + 1
    assert status["progress"]["books_done"] == SAMPLE_BOOKS
    assert status["progress"]["percent"] == 88.8
    new_book.set()
    status = await running.wait_for(lambda s: s["pass"] == 2 and s["state"] == "waiting")
    assert status["progress"]["books_done"] == SAMPLE_BOOKS + 1
