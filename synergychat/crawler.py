"""The crawler role: walks the Gutendex catalogue, counts keywords, serves counts.

INTERFACE STUB: the implementation is being written (issue 3). The shape below
is what roles.py, transport.py and the api rely on; keep it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiohttp import web

from .settings import CrawlerSettings
from .transport import KeywordCount


class Crawler:
    """Owns the count store and the crawl task. Building it does no I/O."""

    def __init__(self, settings: CrawlerSettings) -> None:
        self.settings = settings

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        """A cleanup context: open the store and start crawling; stop and close after."""
        yield

    async def check(self) -> None:
        """Raise unless the crawler can serve (store usable, crawl task alive)."""

    async def stats(self, keywords: Sequence[str], title: str) -> list[KeywordCount]:
        return []

    async def status(self) -> dict[str, Any]:
        return {"state": "starting", "books_counted": 0, "pages_done": 0}


def create_crawler_app(settings: CrawlerSettings, crawler: Crawler | None = None) -> web.Application:
    crawler = crawler or Crawler(settings)
    app = web.Application()
    app.cleanup_ctx.append(crawler.lifecycle)
    return app
