"""One crawl of the Gutendex catalogue: the crawl task's work, and where it stands.

The task walks the catalogue page by page from ``{CRAWLER_SOURCE_URL}/books/``
following ``next``, counts each book it has not counted yet, and records after
every book and every page where it is, so a restart resumes on the same page and
never counts a book twice. At the end of the catalogue it waits and walks it
again for new books (and for books it had to give up on). A book given up on a
fault that may pass goes on a try-later list and is tried again within the pass.
docs/CRAWLER.md says more, including what happens when ``CRAWLER_KEYWORDS`` changes.
``crawler.py`` owns the store and runs this task; ``/status`` reads its fields. Its waits
and try-later list: ``crawl_waits.py``; the walk of replicas sharing a store: ``crawl_shared.py``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from yarl import URL

from .catalogue import CatalogueBook, CataloguePage, TextSource, first_page_url
from .crawl_progress import Progress, RateMeter, describe_progress, quiet_seconds, rate_window_seconds
from .crawl_shared import walk_shared
from .crawl_waits import DATABASE_RETRY_SECONDS, CrawlWaits, TryLaterBooks
from .gutendex import BookUnavailable, CatalogueUnavailable, Gutendex, PageNotFound
from .metrics import CrawlerMetrics
from .settings import CrawlerSettings
from .storage import CountedBook, CountStore, CrawlPosition, StoreUnavailable, utc_now_iso

log = logging.getLogger(__name__)

# After the last page: how long to wait before walking the catalogue again for new books.
RESCAN_AFTER_SECONDS = 3600.0
# After a page failed all its retries: how long before trying that page again.
PAGE_RETRY_SECONDS = 300.0
# A book given up on a passing fault (too slow, retries used up) is tried again after
# this, then after twice as long each time it fails again (up to a day: TRY_LATER_MAX_SECONDS
# in crawl_waits.py), within the pass.
TRY_LATER_SECONDS = 3600.0


class Crawl:
    """The crawl task's work (``run``) and its state, read by ``/status`` and readiness.

    ``state`` is one of starting, recounting, crawling, retrying, waiting, paused (a shared
    count database does not answer), failed, stopped.
    """

    def __init__(
        self,
        settings: CrawlerSettings,
        *,
        rescan_after_seconds: float,
        page_retry_seconds: float,
        try_later_seconds: float,
        max_book_bytes: int,
        sleep: Callable[[float], Awaitable[object]],
        metrics: CrawlerMetrics,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.keywords: tuple[str, ...] = tuple(settings.crawler_keywords)
        self.waits = CrawlWaits(
            settings.crawler_delay_seconds,
            rescan_after_seconds=rescan_after_seconds,
            page_retry_seconds=page_retry_seconds,
            sleep=sleep,
        )
        self.try_later = TryLaterBooks(try_later_seconds)
        self._max_book_bytes = max_book_bytes
        self.state = "starting"
        self.failure: BaseException | None = None
        self.current_book: CatalogueBook | CountedBook | None = None
        self.to_recount = 0
        # Whether the catalogue answers, since when, and the fault if not (for /status
        # and so the bot's reply): None until the first request.
        self.catalogue: dict[str, Any] = {"reachable": None, "since": None, "error": None}
        # How fast books get done (counted or skipped), measured as the crawl goes.
        self.rate = RateMeter(rate_window_seconds(settings.crawler_delay_seconds))
        # The catalogue's size as last written to the store: ``page_read`` writes it again
        # only when a page says otherwise. Each walk sets it from the store as it starts.
        self.recorded_books_total: int | None = None

    @property
    def books_to_try_later(self) -> int:
        return len(self.try_later)

    def observe_catalogue(self, fault: str | None) -> None:
        """After every request to the catalogue: did it answer (None), or what went wrong."""
        reachable = fault is None
        if not reachable:
            self.metrics.catalogue_errors.inc()
        if self.catalogue["reachable"] is not reachable:
            self.catalogue["since"] = utc_now_iso()
            if not reachable:
                log.warning(
                    "the catalogue at CRAWLER_SOURCE_URL (%s) does not answer: %s",
                    self.settings.crawler_source_url,
                    fault,
                )
            elif self.catalogue["reachable"] is False:
                log.info("the catalogue answers again")
        self.catalogue.update(reachable=reachable, error=fault)

    def progress(self, books_counted: int, books_skipped: int, books_total: int | None) -> Progress:
        """``/status``'s ``progress``: what the counts cover, of the catalogue's ``count``.

        Books still to recount for new keywords are not done: their counts lack a keyword.
        """
        delay = self.settings.crawler_delay_seconds
        return describe_progress(
            self.state,
            self._books_done(books_counted, books_skipped),
            books_total,
            self.rate.per_minute(quiet_seconds(delay)),
            delay,
        )

    def _books_done(self, books_counted: int, books_skipped: int) -> int:
        return max(books_counted + books_skipped - self.to_recount, 0)

    async def measure_rate(self, store: CountStore) -> None:
        """After each book (and once at the start): how many are done, for the rate."""
        totals = await store.book_totals()
        self.rate.record(self._books_done(totals["counted"], totals["skipped"]))

    async def run(self, store: CountStore, gutendex: Gutendex) -> None:
        """The crawl task: walk the catalogue for good; a crash is recorded, not raised.

        A shared database that stops answering pauses the walk; it resumes from what the
        database says when it answers again (SQLite's store never raises StoreUnavailable).
        """
        fleet = store.fleet()
        self.waits.fleet = fleet
        while True:
            try:
                if fleet is None:
                    await self._walk(store, gutendex)
                else:
                    await walk_shared(self, store, fleet, gutendex)
                return
            except StoreUnavailable as exc:
                await self._pause(store, exc)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any other failure stops the crawl, recorded by _fail
                await self._fail(store, exc)
                return

    async def _pause(self, store: CountStore, exc: StoreUnavailable) -> None:
        """Wait until the count database answers again."""
        log.warning("the crawl pauses: %s; trying again every %.0f s", exc, DATABASE_RETRY_SECONDS)
        self.state = "paused"
        self.current_book = None
        await self.waits.until_store_answers(store)
        log.info("the count database answers again: the crawl goes on")

    async def _fail(self, store: CountStore, exc: Exception) -> None:
        """Called in the ``except`` block (``log.exception`` shows the traceback)."""
        # A bug or a broken database, not a network fault (those are handled below):
        # stop, say so in readiness and status, keep serving the counts we have.
        log.exception("the crawl stopped on an unexpected error")
        self.current_book = None
        try:
            await store.record_error(f"the crawl stopped: {exc!r}")
        except Exception:
            log.exception("could not record the crawl's failure")
        # After the store: /status reads the state last, so "failed" comes with its error.
        self.failure = exc
        self.state = "failed"

    def restore_last_success(self, position: CrawlPosition) -> None:
        """Set the last-success gauge from the store: it says the truth from the first scrape
        after a restart, not "never" until the next book is counted."""
        if position.last_success_at is not None:
            self.metrics.last_success.set(datetime.fromisoformat(position.last_success_at).timestamp())

    async def _walk(self, store: CountStore, gutendex: Gutendex) -> None:
        source = self.settings.crawler_source_url
        first_page = first_page_url(source)
        position = await store.position()
        if position.source_url != source:
            if position.source_url is not None:
                log.info(
                    "CRAWLER_SOURCE_URL changed from %s: starting at %s", position.source_url, first_page
                )
            await store.start_pass(source, first_page, position.pass_number + 1)
            # Another catalogue: the old one's size says nothing about it.
            await store.record_books_total(None)
            position = await store.position()
        elif position.next_page_url is not None:
            log.info("resuming pass %d at %s", position.pass_number, position.next_page_url)

        self.restore_last_success(position)
        self.recorded_books_total = position.books_total
        await self._recount_stale(store, gutendex, position.pass_number)

        # The pages read in this pass: a ``next`` back to one of them is a loop, which
        # would otherwise be walked forever. About 2,400 URLs for the whole catalogue;
        # forgotten when a pass starts (and by a restart, which costs one more lap at most).
        read_this_pass: set[str] = set()
        while True:
            position = await store.position()
            page_url = position.next_page_url
            if page_url is None:
                self.state = "waiting"
                wait = self.waits.seconds_until_rescan(position.pass_finished_at)
                log.info("the catalogue was read to its end; looking for new books in %.0f s", wait)
                await self.waits.sleep(wait)
                self.state = "crawling"
                log.info("walking the catalogue again for new books (pass %d)", position.pass_number + 1)
                await store.start_pass(source, first_page, position.pass_number + 1)
                read_this_pass.clear()
                self.try_later.clear()
                continue
            self.state = "crawling"
            await self.try_again_due(store, gutendex, position.pass_number)
            try:
                page = await self.waits.request(functools.partial(gutendex.page, page_url))
            except PageNotFound:
                await self.page_missing(store, page_url)
                await store.page_done(None)
                continue
            except CatalogueUnavailable as exc:
                await self.page_unavailable(store, page_url, exc)
                await self.waits.wait_to_retry_page()
                continue
            next_url = await self.page_read(store, page, page_url, read_this_pass, position.pass_number)
            for book in page.books:
                await self._take(store, gutendex, book, position.pass_number)
                await self.try_again_due(store, gutendex, position.pass_number)
            await store.page_done(next_url)

    # What a page says and what a book needs, for this walk and the shared one (crawl_shared.py).

    async def page_read(
        self,
        store: CountStore,
        page: CataloguePage,
        page_url: str,
        read_this_pass: set[str],
        pass_number: int,
    ) -> str | None:
        """Note the catalogue's size, and say where the walk goes next: None at the end, or
        where ``next`` leads back to a page of this pass (a loop, recorded as an error)."""
        read_this_pass.add(_page_key(page_url))
        if page.count is not None and page.count != self.recorded_books_total:
            await store.record_books_total(page.count)
            self.recorded_books_total = page.count
        next_url = page.next_url
        if next_url is not None and _page_key(next_url) in read_this_pass:
            source = self.settings.crawler_source_url
            message = (
                f"the catalogue at CRAWLER_SOURCE_URL ({source}) loops: page {page_url} has next"
                f" {next_url}, already read in this pass; the pass ends here"
            )
            log.error("%s", message)
            await store.record_error(message)
            return None
        if next_url is None:
            log.info("reached the end of the catalogue (pass %d)", pass_number)
        return next_url

    async def page_missing(self, store: CountStore, page_url: str) -> None:
        """Past the end: the catalogue shrank under us, or the source URL is wrong."""
        message = f"catalogue page {page_url} does not exist"
        if page_url == first_page_url(self.settings.crawler_source_url):
            message += ": is CRAWLER_SOURCE_URL a Gutendex catalogue?"
            await store.record_error(message)
        log.warning("%s; the pass ends here", message)

    async def page_unavailable(self, store: CountStore, page_url: str, exc: CatalogueUnavailable) -> None:
        """Recorded and said; the caller then waits ``waits.wait_to_retry_page()`` to try again."""
        retry = self.waits.page_retry_seconds
        if exc.not_a_catalogue:
            # It answers, with something else (a web site, another API): most likely misconfigured.
            source = self.settings.crawler_source_url
            message = f"catalogue page {page_url} is {exc}: check CRAWLER_SOURCE_URL ({source})"
            log.error("%s; trying again in %.0f s", message, retry)
        else:
            message = f"catalogue page {page_url}: {exc}"
            log.warning("catalogue page %s unavailable: %s; trying again in %.0f s", page_url, exc, retry)
        await store.record_error(message)
        self.state = "retrying"

    async def _recount_stale(self, store: CountStore, gutendex: Gutendex, pass_number: int) -> None:
        """Books counted with other keywords: count them again for the current ones, first."""
        stale = await store.stale_books(self.keywords)
        self.to_recount = len(stale)
        # Where the rate is measured from (after to_recount is known: it lowers books done).
        await self.measure_rate(store)
        if not stale:
            return
        log.info(
            "CRAWLER_KEYWORDS changed: counting %d books again for %s", len(stale), ",".join(self.keywords)
        )
        self.state = "recounting"
        for book in stale:
            if book.text_url is not None:
                await self.count(store, gutendex, book, pass_number)
            self.to_recount -= 1
            await self.measure_rate(store)

    async def _take(
        self, store: CountStore, gutendex: Gutendex, entry: CatalogueBook, pass_number: int
    ) -> None:
        if not await store.needs_counting(entry.id, self.keywords, pass_number):
            return
        book = await self.countable(store, entry, pass_number)
        if book is not None:
            await self.count(store, gutendex, book, pass_number)
        await self.measure_rate(store)

    async def countable(
        self, store: CountStore, entry: CatalogueBook, pass_number: int
    ) -> CountedBook | None:
        """The book to download, or None when it has no plain text (recorded as skipped here)."""
        if entry.text is None:
            log.info("book %d (%s) has no plain text: skipped", entry.id, entry.title)
            await store.save_skip(entry.id, entry.title, "no plain text", pass_number)
            self.metrics.books_skipped.inc()
            return None
        return CountedBook(entry.id, entry.title, entry.text.url, entry.text.charset)

    async def count(self, store: CountStore, gutendex: Gutendex, book: CountedBook, pass_number: int) -> None:
        """Download the book's text and count it; or record why not, and try it later if it may pass."""
        assert book.text_url is not None
        source = TextSource(book.text_url, book.charset)
        self.current_book = book
        try:
            counts = await self.waits.request(
                lambda: gutendex.count_book(source, self.keywords, self._max_book_bytes)
            )
        except BookUnavailable as exc:
            message = f"book {book.id} ({book.title}) skipped: {exc}"
            if exc.try_later:
                message += f"; trying it again in {_duration(self.try_later.schedule(book))}"
            else:
                self.try_later.forget(book.id)
            log.warning("%s", message)
            await store.save_skip(book.id, book.title, str(exc), pass_number)
            self.metrics.books_skipped.inc()
            await store.record_error(message)
        else:
            self.try_later.forget(book.id)
            await store.save_counts(book, self.keywords, counts, pass_number)
            self.metrics.books_counted.inc()
            self.metrics.last_success.set(time.time())
            log.info(
                "book %d (%s) counted: %s",
                book.id,
                book.title,
                ", ".join(f"{keyword} {count}" for keyword, count in counts.items()),
            )
        finally:
            self.current_book = None

    async def try_again_due(self, store: CountStore, gutendex: Gutendex, pass_number: int) -> None:
        """Count the books whose try-later time has come (a slow server, a passing fault)."""
        for book in self.try_later.due():
            log.info("book %d (%s): trying it again", book.id, book.title)
            await self.count(store, gutendex, book, pass_number)


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:g} s"


def _page_key(url: str) -> str:
    """A page URL as yarl writes it, so that two spellings of one page compare equal."""
    try:
        return str(URL(url))
    except ValueError:
        return url
