"""The crawl of a replica that shares its store with others (``CRAWLER_DATABASE_URL``).

``Crawl.run`` calls :func:`walk_shared` instead of its own walk when the store has a
:class:`~.storage.CrawlFleet`; it drives the :class:`~.crawl.Crawl` through its public
face (its state, its pages and books, its waits: ``crawl.waits``, ``crawl.try_later``).
The replicas split one walk of the catalogue:

1. A book listed in the shared queue and held by nobody comes first: take it (a lease,
   renewed while it downloads), count it, write the counts as the book leaves the queue.
2. Else, whoever takes the page cursor's lease reads the next page, lists the books on it
   that need counting, and moves the cursor on, in one transaction. The others wait a
   moment and look again (at most a page's books are listed ahead of the counting).
3. When the last page is read and the queue is empty, every replica waits for the next
   pass; the first one past the wait starts it (the others see it started).

Loops in the catalogue are caught per replica (the pages it read in this pass), so a loop
ends the pass after at most a few more pages than alone. docs/SCALE.md says more.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING

from .catalogue import CataloguePage, first_page_url
from .gutendex import CatalogueUnavailable, Gutendex, PageNotFound
from .storage import CountedBook, CountStore, CrawlFleet, LeaseLost

if TYPE_CHECKING:
    from .crawl import Crawl

log = logging.getLogger(__name__)

# How often a replica with nothing to do looks at the queue and the cursor again.
IDLE_POLL_SECONDS = 1.0


async def walk_shared(crawl: Crawl, store: CountStore, fleet: CrawlFleet, gutendex: Gutendex) -> None:
    source = crawl.settings.crawler_source_url
    first_page = first_page_url(source)
    position = await store.position()
    if position.source_url != source:
        if position.source_url is not None:
            log.info("CRAWLER_SOURCE_URL changed from %s: starting at %s", position.source_url, first_page)
        # Conditional: of replicas starting together, one starts the pass.
        await fleet.start_pass_after(source, first_page, position.pass_number)
        position = await store.position()
    crawl.restore_last_success(position)
    crawl.recorded_books_total = position.books_total

    stale = await store.stale_books(crawl.keywords)
    crawl.to_recount = len(stale)
    if stale:
        log.info(
            "CRAWLER_KEYWORDS changed: listing %d books to count again for %s",
            len(stale),
            ",".join(crawl.keywords),
        )
        await fleet.enqueue(
            [book for book in stale if book.text_url is not None], position.pass_number, crawl.keywords
        )
    await crawl.measure_rate(store)

    read_this_pass: set[str] = set()
    pass_seen = position.pass_number
    while True:
        claimed = await fleet.claim_book()
        if claimed is not None:
            crawl.state = "recounting" if crawl.to_recount else "crawling"
            await _count_claimed(crawl, store, fleet, gutendex, claimed.book, claimed.pass_number)
            continue
        # Nothing left to take: whatever this replica listed for recounting is done or held.
        crawl.to_recount = 0
        position = await store.position()
        if position.pass_number != pass_seen:
            pass_seen = position.pass_number
            read_this_pass.clear()
            crawl.try_later.clear()
        await crawl.try_again_due(store, gutendex, position.pass_number)
        page_url = position.next_page_url
        if page_url is None:
            if await fleet.books_listed():
                # Other replicas are still counting the last pages' books.
                crawl.state = "crawling"
                await crawl.waits.sleep(IDLE_POLL_SECONDS)
                continue
            crawl.state = "waiting"
            wait = crawl.waits.seconds_until_rescan(position.pass_finished_at)
            if wait > 0:
                # In short naps: another replica may start the pass first, and this one joins it.
                await crawl.waits.sleep(min(wait, IDLE_POLL_SECONDS))
                continue
            if await fleet.start_pass_after(source, first_page, position.pass_number):
                log.info("walking the catalogue again for new books (pass %d)", position.pass_number + 1)
            continue
        if not await fleet.claim_page(page_url, fleet.lease_seconds):
            # Another replica is reading the next page.
            crawl.state = "crawling"
            await crawl.waits.sleep(IDLE_POLL_SECONDS)
            continue
        crawl.state = "crawling"
        page = await _read_page(crawl, store, fleet, gutendex, page_url)
        if page is None:
            continue
        next_url = await crawl.page_read(store, page, page_url, read_this_pass, position.pass_number)
        listed = await _books_to_list(crawl, store, page, position.pass_number)
        try:
            await fleet.page_read(page_url, next_url, listed, position.pass_number, crawl.keywords)
        except LeaseLost as exc:
            log.warning("%s; going on from where it is now", exc)


async def _read_page(
    crawl: Crawl, store: CountStore, fleet: CrawlFleet, gutendex: Gutendex, page_url: str
) -> CataloguePage | None:
    """The page, read under the cursor's lease; None if it was dealt with otherwise (the
    catalogue ended there, or it failed and this replica waited before it is tried again)."""
    try:
        # Renewed while the page downloads (with its retries): a replica that dies meanwhile
        # lets go of the cursor a lease later.
        async with fleet.holding_page(page_url):
            return await crawl.waits.request(functools.partial(gutendex.page, page_url))
    except PageNotFound:
        await crawl.page_missing(store, page_url)
        try:
            await fleet.page_read(page_url, None, [], (await store.position()).pass_number, crawl.keywords)
        except LeaseLost as exc:
            log.warning("%s", exc)
        return None
    except CatalogueUnavailable as exc:
        await crawl.page_unavailable(store, page_url, exc)
        # Kept through the wait: the other replicas don't hammer the failing page meanwhile.
        await fleet.claim_page(page_url, crawl.waits.page_retry_seconds + fleet.lease_seconds)
        await crawl.waits.wait_to_retry_page()
        return None


async def _books_to_list(
    crawl: Crawl, store: CountStore, page: CataloguePage, pass_number: int
) -> list[CountedBook]:
    """The page's books that need counting; those without plain text are recorded as skipped here."""
    listed = []
    for entry in page.books:
        if not await store.needs_counting(entry.id, crawl.keywords, pass_number):
            continue
        book = await crawl.countable(store, entry, pass_number)
        if book is not None:
            listed.append(book)
    return listed


async def _count_claimed(
    crawl: Crawl,
    store: CountStore,
    fleet: CrawlFleet,
    gutendex: Gutendex,
    book: CountedBook,
    pass_number: int,
) -> None:
    try:
        async with fleet.holding(book.id):
            await crawl.count(store, gutendex, book, pass_number)
    except LeaseLost as exc:
        # This replica was too slow (or cut off from the database) and another took the book.
        log.warning("%s: this replica's count of it is dropped", exc)
    if crawl.to_recount:
        crawl.to_recount -= 1
    await crawl.measure_rate(store)
