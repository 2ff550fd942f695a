"""The count store's promises, held by every backend, and what PostgreSQL's adds for a fleet.

The first part runs against every store (``open_count_store``: SQLite in a file, in
memory, PostgreSQL). The second is PostgreSQL's own: several stores on one database
standing for crawler replicas (leases, the page cursor, the pace), and crawls that share it.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from synergychat.storage import CountedBook, CountStore, CrawlFleet, LeaseLost
from synergychat.storage.pg_counts import PostgresCountStore
from tests.support.postgres import PostgresServer, wait_for_server

from .conftest import (
    SAMPLE_COUNTS,
    SAMPLE_TEXT_FILES,
    TEST_LEASE_SECONDS,
    OpenCountStore,
    RunningCrawler,
    crawler_settings,
    rows,
)
from .fake_gutendex import FakeGutendex

StartCrawler = Callable[..., Awaitable[RunningCrawler]]
BOOK = CountedBook(84, "Frankenstein", "https://g.org/84.txt", "utf-8")


async def test_position_passes_pages_and_errors(open_count_store: OpenCountStore) -> None:
    store = await open_count_store()
    position = await store.position()
    assert (position.source_url, position.next_page_url, position.pass_number) == (None, None, 0)
    await store.start_pass("https://g.org", "https://g.org/books/", 1)
    await store.record_books_total(75000)
    await store.page_done("https://g.org/books/?page=2")
    position = await store.position()
    assert (position.next_page_url, position.pages_done, position.books_total) == (
        "https://g.org/books/?page=2",
        1,
        75000,
    )
    assert position.pass_finished_at is None
    await store.page_done(None)
    await store.record_error("book 9 skipped: HTTP 404")
    position = await store.position()
    assert position.next_page_url is None and position.pass_finished_at is not None
    assert position.last_error_message == "book 9 skipped: HTTP 404" and position.last_error_at is not None


async def test_counts_replace_never_add_and_skips_keep_counts(open_count_store: OpenCountStore) -> None:
    store = await open_count_store()
    assert await store.needs_counting(84, ["love"], 1)
    await store.save_counts(BOOK, ["love", "hate"], {"love": 3, "hate": 0}, 1)
    await store.save_counts(BOOK, ["love", "hate"], {"love": 3, "hate": 0}, 1)
    assert await store.stats(["love", "hate"], "") == [
        {"Keyword": "love", "BookTitle": "Frankenstein", "Count": 3}
    ]
    assert not await store.needs_counting(84, ["love"], 2)
    # A keyword it was not counted for: needs counting, and it is stale.
    assert await store.needs_counting(84, ["love", "joy"], 2)
    assert await store.stale_books(["love", "joy"]) == [BOOK]
    assert await store.stale_books(["hate"]) == []
    # Given up on later (a recount failed): the counts stay.
    await store.save_skip(84, "Frankenstein", "HTTP 503", 2)
    assert await store.totals(["love"], "FRANK") == {"totals": {"love": 3}, "books": 1}
    await store.save_skip(85, "Gone", "HTTP 404", 2)
    assert not await store.needs_counting(85, ["love"], 2)  # given up this pass
    assert await store.needs_counting(85, ["love"], 3)  # tried again next pass
    assert await store.book_totals() == {"counted": 1, "skipped": 1}


# PostgreSQL's own: replicas on one database.


@pytest.fixture
async def replicas(postgres_url: str) -> AsyncIterator[list[PostgresCountStore]]:
    stores = [await PostgresCountStore.open(postgres_url, 4, TEST_LEASE_SECONDS) for _ in range(2)]
    yield stores
    for store in stores:
        await store.close()


def fleet_of(store: CountStore) -> CrawlFleet:
    fleet = store.fleet()
    assert fleet is not None
    return fleet


async def test_sqlite_walks_alone() -> None:
    from synergychat.storage import SqliteCountStore

    store = await SqliteCountStore.open(None)
    try:
        assert store.fleet() is None
    finally:
        await store.close()


async def test_a_listed_book_is_leased_to_one_replica_until_its_lease_runs_out(
    replicas: list[PostgresCountStore],
) -> None:
    first, second = (fleet_of(store) for store in replicas)
    await first.enqueue([BOOK], 1, ["love"])
    claimed = await first.claim_book()
    assert claimed is not None and claimed.book == BOOK and claimed.pass_number == 1
    assert await second.claim_book() is None
    # The first replica goes quiet (no renewal): after the lease, the second takes the book over.
    await asyncio.sleep(TEST_LEASE_SECONDS + 0.3)
    taken = await second.claim_book()
    assert taken is not None and taken.book == BOOK
    # The first one's late result is refused, and writes nothing; the second one's is written once.
    with pytest.raises(LeaseLost):
        await replicas[0].save_counts(BOOK, ["love"], {"love": 5}, 1)
    assert await replicas[0].stats(["love"], "") == []
    async with second.holding(BOOK.id):
        await replicas[1].save_counts(BOOK, ["love"], {"love": 3}, 1)
    assert await replicas[0].totals(["love"], "") == {"totals": {"love": 3}, "books": 1}
    assert await first.books_listed() == 0 and await first.claim_book() is None


async def test_a_held_book_keeps_its_lease_while_it_downloads(replicas: list[PostgresCountStore]) -> None:
    first, second = (fleet_of(store) for store in replicas)
    await first.enqueue([BOOK], 1, ["love"])
    assert await first.claim_book() is not None
    async with first.holding(BOOK.id):
        # Three leases long: renewed all along, never taken over.
        for _ in range(6):
            await asyncio.sleep(TEST_LEASE_SECONDS / 2)
            assert await second.claim_book() is None
        await replicas[0].save_counts(BOOK, ["love"], {"love": 1}, 1)
    assert await second.books_listed() == 0


async def test_the_page_cursor_is_read_by_one_replica_at_a_time(replicas: list[PostgresCountStore]) -> None:
    first, second = (fleet_of(store) for store in replicas)
    store = replicas[0]
    assert await first.start_pass_after("https://g.org", "https://g.org/books/", 0)
    # A replica starting together with it does not start the pass again.
    assert not await second.start_pass_after("https://g.org", "https://g.org/books/", 0)
    assert await first.claim_page("https://g.org/books/", TEST_LEASE_SECONDS)
    assert not await second.claim_page("https://g.org/books/", TEST_LEASE_SECONDS)
    books = [CountedBook(n, f"Book {n}", f"https://g.org/{n}.txt", None) for n in (3, 1, 2)]
    await first.page_read("https://g.org/books/", "https://g.org/books/?page=2", books, 1, ["love"])
    position = await store.position()
    assert (position.next_page_url, position.pages_done, position.pass_number) == (
        "https://g.org/books/?page=2",
        1,
        1,
    )
    # Listed in the page's order, and each once even if listed again.
    await second.enqueue(books[:1], 1, ["love"])
    claimed = [await second.claim_book() for _ in range(4)]
    assert [book.book.id for book in claimed if book] == [3, 1, 2] and claimed[3] is None
    # A replica whose cursor lease ran out and was taken over cannot move the cursor.
    assert await first.claim_page("https://g.org/books/?page=2", 0.2)
    await asyncio.sleep(0.4)
    assert await second.claim_page("https://g.org/books/?page=2", TEST_LEASE_SECONDS)
    with pytest.raises(LeaseLost):
        await first.page_read("https://g.org/books/?page=2", None, [], 1, ["love"])
    await second.page_read("https://g.org/books/?page=2", None, [], 1, ["love"])
    position = await store.position()
    assert position.next_page_url is None and position.pages_done == 2


async def test_request_slots_are_spaced_across_replicas(replicas: list[PostgresCountStore]) -> None:
    fleets = [fleet_of(store) for store in replicas]
    delay = 0.3
    granted: list[float] = []

    async def request(fleet: CrawlFleet) -> None:
        for _ in range(4):
            granted.append(await fleet.request_turn(delay))

    await asyncio.gather(*(request(fleet) for fleet in fleets))
    granted.sort()
    gaps = [later - earlier for earlier, later in itertools.pairwise(granted)]
    # The turns as the fleet let them go, on the database's clock: spaced by the delay exactly
    # (a turn woken late only moves the ones after it later). When each caller then gets to
    # send depends on its own process; the process test measures arrivals at the catalogue.
    assert len(granted) == 8 and min(gaps) >= delay - 0.001, gaps


async def test_two_crawlers_on_one_database_count_each_book_once(
    gutendex: FakeGutendex, start_crawler: StartCrawler, postgres_url: str
) -> None:
    crawlers = [
        await start_crawler(crawler_settings(None, gutendex.base_url, database_url=postgres_url))
        for _ in range(2)
    ]
    for running in crawlers:
        await running.wait_until_waiting()
    for running in crawlers:
        assert rows(await running.crawler.stats([], "")) == SAMPLE_COUNTS
        status = await running.crawler.status()
        assert (status["books_counted"], status["books_skipped"], status["pages_done"]) == (7, 1, 3)
    assert gutendex.served == {name: 1 for name in SAMPLE_TEXT_FILES}
    assert all(gutendex.requests[gutendex.page_path(n)] == 1 for n in (1, 2, 3))


async def test_new_keywords_are_recounted_by_the_fleet(
    gutendex: FakeGutendex, start_crawler: StartCrawler, postgres_url: str
) -> None:
    first = await start_crawler(crawler_settings(None, gutendex.base_url, ["love"], postgres_url))
    await first.wait_until_waiting()
    await first.stop()
    settings = crawler_settings(None, gutendex.base_url, ["love", "hate"], postgres_url)
    crawlers = [await start_crawler(settings) for _ in range(2)]
    for running in crawlers:
        await running.wait_for(lambda s: s["state"] == "waiting" and s["books_to_recount"] == 0)
    assert rows(await crawlers[0].crawler.stats([], "")) == SAMPLE_COUNTS
    # Each text read once more (for "hate"), by one replica or the other.
    assert gutendex.served == {name: 2 for name in SAMPLE_TEXT_FILES}


async def test_a_database_outage_pauses_the_crawl_which_resumes_without_a_restart(
    gutendex: FakeGutendex, start_crawler: StartCrawler, postgres_server: PostgresServer, postgres_url: str
) -> None:
    gate = gutendex.hold("/books/?page=2")
    running = await start_crawler(crawler_settings(None, gutendex.base_url, database_url=postgres_url))
    await running.wait_for(lambda s: s["pages_done"] == 1 and gutendex.requests["/books/?page=2"] == 1)
    postgres_server.stop("fast")
    try:
        gate.set()
        # /status reads the database too: the crawl's own state says it paused.
        deadline = time.monotonic() + 20
        while running.crawler._crawl.state != "paused":
            assert time.monotonic() < deadline, running.crawler._crawl.state
            await asyncio.sleep(0.05)
        body = await running.get_json("/readyz", expected_status=503)
        assert body["checks"]["database"]["ok"] is False
        body = await running.get_json("/stats", expected_status=503)
        assert "counts unavailable" in body["error"]
        await running.get_json("/stats/totals", expected_status=503)
        await running.get_json("/status", expected_status=503)
    finally:
        postgres_server.start()
    wait_for_server(postgres_server)
    status = await running.wait_for(lambda s: s["state"] == "waiting", timeout=30)
    assert rows(await running.crawler.stats([], "")) == SAMPLE_COUNTS
    assert status["books_counted"] == 7
    await running.get_json("/readyz")
