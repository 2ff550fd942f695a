"""The crawl's waits: when it may ask the catalogue again, and when it tries a book again.

:class:`CrawlWaits` paces the requests to the catalogue (``CRAWLER_DELAY_SECONDS`` after
the previous one ended; in a fleet, also at least that long after the fleet's previous
request started), and waits before a failed page is read again, before the next pass,
and while a shared count database does not answer. :class:`TryLaterBooks` holds the books
given up on a fault that may pass, each with the time it is due again. Both walks use
them: the walk alone in ``crawl.py`` and the walk of a fleet in ``crawl_shared.py``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from .storage import CountedBook, CountStore, CrawlFleet, StoreUnavailable

T = TypeVar("T")

# A book tried later waits twice as long each time it fails again, up to a day.
TRY_LATER_MAX_SECONDS = 86400.0
# While a shared count database (PostgreSQL) does not answer: how often to look again.
DATABASE_RETRY_SECONDS = 2.0


class CrawlWaits:
    """Every wait of the crawl goes through the ``sleep`` it is given (tests pass their own)."""

    def __init__(
        self,
        delay_seconds: float,
        *,
        rescan_after_seconds: float,
        page_retry_seconds: float,
        sleep: Callable[[float], Awaitable[object]],
    ) -> None:
        self.delay_seconds = delay_seconds
        self.rescan_after_seconds = rescan_after_seconds
        # After a page failed all its retries: how long before it is read again.
        self.page_retry_seconds = page_retry_seconds
        self._sleep = sleep
        # The crawlers whose requests are paced together with this one's (None: it walks
        # alone); set by ``Crawl.run`` from the store.
        self.fleet: CrawlFleet | None = None
        self._last_request_end: float | None = None

    async def sleep(self, seconds: float) -> None:
        await self._sleep(seconds)

    async def wait_to_retry_page(self) -> None:
        """After a page failed all its retries: wait ``page_retry_seconds``."""
        await self._sleep(self.page_retry_seconds)

    async def request(self, call: Callable[[], Awaitable[T]]) -> T:
        """Make a request, ``CRAWLER_DELAY_SECONDS`` after the previous one ended; in a fleet,
        also at least that long after the fleet's previous request started."""
        delay = self.delay_seconds
        if self._last_request_end is not None:
            wait = self._last_request_end + delay - time.monotonic()
            if wait > 0:
                await self._sleep(wait)
        if self.fleet is not None and delay > 0:
            await self.fleet.request_turn(delay)
        try:
            return await call()
        finally:
            self._last_request_end = time.monotonic()

    async def until_store_answers(self, store: CountStore) -> None:
        """Look at the count database every ``DATABASE_RETRY_SECONDS`` until it answers."""
        while True:
            await self._sleep(DATABASE_RETRY_SECONDS)
            try:
                await store.check()
            except StoreUnavailable:
                continue
            return

    def seconds_until_rescan(self, pass_finished_at: str | None) -> float:
        """How long, after the last page, before the catalogue is walked again for new books."""
        if pass_finished_at is None:
            return self.rescan_after_seconds
        finished = datetime.fromisoformat(pass_finished_at)
        elapsed = (datetime.now(finished.tzinfo) - finished).total_seconds()
        # A restart during the wait waits only what is left of it.
        return min(max(self.rescan_after_seconds - elapsed, 0.0), self.rescan_after_seconds)


class TryLaterBooks:
    """The books given up on a fault that may pass (too slow, retries used up), to be tried
    again within the pass. Not kept over a restart: the book is then tried in the next pass."""

    def __init__(self, first_wait_seconds: float) -> None:
        self._first_wait = first_wait_seconds
        # Book id -> (when, monotonic; the wait that led there; the book).
        self._books: dict[int, tuple[float, float, CountedBook]] = {}

    def __len__(self) -> int:
        return len(self._books)

    def schedule(self, book: CountedBook) -> float:
        """Put the book on the list; the wait doubles each time. Returns the wait."""
        previous = self._books.get(book.id)
        wait = min(previous[1] * 2, TRY_LATER_MAX_SECONDS) if previous else self._first_wait
        self._books[book.id] = (time.monotonic() + wait, wait, book)
        return wait

    def forget(self, book_id: int) -> None:
        """The book was counted, or given up on for good: off the list, if it was on it."""
        self._books.pop(book_id, None)

    def clear(self) -> None:
        """A new pass looks at every book given up on in the last one anyway."""
        self._books.clear()

    def due(self) -> list[CountedBook]:
        """The books whose time has come, the longest due first."""
        now = time.monotonic()
        due_books = []
        for due, _, book in sorted(self._books.values(), key=lambda item: item[0]):
            if due > now:
                break
            due_books.append(book)
        return due_books
