"""The api's public ``GET /crawl/progress``: how far the crawl is, for anyone (the page polls it).

It answers only the crawl's state and its counts (``CrawlProgress``): the crawler's
``/status`` also names the catalogue's address and its errors, which are the operator's.
The crawler is asked through the api's transport (``transport.py``), like the bot asks it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiohttp import web

from .http_errors import json_error
from .transport import CrawlerClient, CrawlerNotConfigured, CrawlerUnavailable, CrawlProgress

log = logging.getLogger(__name__)

# Every open page asks every 30 s, and each answer costs the crawler two queries of its
# store: one answer (or one failure) serves all of them for this long, and asks that
# arrive while the crawler is being asked wait for that one call.
CACHE_SECONDS = 10.0
# A 503 tells the page when asking again is worth it.
RETRY_AFTER_SECONDS = 30
NOT_CONFIGURED = "no crawler is configured for this chat"
UNAVAILABLE = "the crawler is not answering right now"


class CrawlProgressEndpoint:
    def __init__(
        self, crawler: CrawlerClient, timeout_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._crawler = crawler
        self._timeout = timeout_seconds
        self._clock = clock
        self._answer: asyncio.Future[CrawlProgress] | None = None
        self._asked_at = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        try:
            progress = await self._progress()
        except CrawlerNotConfigured:
            return json_error(503, NOT_CONFIGURED, {"Retry-After": str(RETRY_AFTER_SECONDS)})
        except (CrawlerUnavailable, TimeoutError):
            return json_error(503, UNAVAILABLE, {"Retry-After": str(RETRY_AFTER_SECONDS)})
        return web.json_response(
            {
                "state": progress.state,
                "books_done": progress.books_done,
                "books_total": progress.books_total,
                "percent": progress.percent,
                "books_per_minute": progress.books_per_minute,
                "eta_seconds": progress.eta_seconds,
            },
            headers={"Cache-Control": "no-cache"},
        )

    async def _progress(self) -> CrawlProgress:
        answer = self._answer
        if answer is None or (answer.done() and self._clock() - self._asked_at >= CACHE_SECONDS):
            self._asked_at = self._clock()
            answer = self._answer = asyncio.ensure_future(self._ask())
            # Its failure is read by whoever waits; this keeps one nobody waited for quiet.
            answer.add_done_callback(lambda done: done.cancelled() or done.exception())
        # Shielded: a page that goes away must not cancel the call the others wait for.
        return await asyncio.shield(answer)

    async def _ask(self) -> CrawlProgress:
        try:
            return await asyncio.wait_for(self._crawler.progress(), self._timeout)
        except (CrawlerUnavailable, TimeoutError) as exc:
            # Said at DEBUG: every open page asks, and readiness already reports the crawler.
            log.debug("GET /crawl/progress: %s", exc or "the crawler did not answer in time")
            raise
