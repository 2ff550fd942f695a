"""crawler-bot: turns a ``/stats`` query into the reply the chat shows."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import UTC, datetime

from .commands import STATS_HELP, CommandError, StatsQuery
from .stats import KeywordTotals
from .transport import (
    CatalogueStatus,
    CrawlerClient,
    CrawlerNotConfigured,
    CrawlerRefused,
    CrawlerStatus,
    CrawlerUnavailable,
)

log = logging.getLogger(__name__)

BOT_USERNAME = "crawler-bot"
NOT_CONFIGURED_REPLY = "Crawler worker not configured"
UNAVAILABLE_REPLY = (
    "Beep boop! I can't reach the crawler right now, so I have no numbers for you. "
    "Please try again in a minute."
)

# The grammar of the reply's numbers, which the page reads to draw its chart (static/chart.js
# holds the same two patterns: a browser test checks they are equal, and that the page reads
# every kind of reply describe_totals writes). The stored message stays plain text:
#   ... found N matches [so far ]in books matching your request. K1: C1, K2: C2 (in B book[s]).
# Keywords hold no comma (CRAWLER_KEYWORDS is a comma list); one holding ": " is read up to
# its last ": ". The counts add up to N; a reply with no match has no breakdown.
STATS_REPLY_PATTERN = (
    r"found ([0-9]+) matches (?:so far )?in books matching your request\. "
    r"((?:[^,]+: [0-9]+)(?:, [^,]+: [0-9]+)*) \(in ([0-9]+) books?\)\."
)
STATS_REPLY_ENTRY_PATTERN = r"([^,]+): ([0-9]+)(?:, |$)"


def describe_totals(
    totals: KeywordTotals, books_read: int | None, catalogue: CatalogueStatus | None = None
) -> str:
    """The original's sentence, then a per-keyword breakdown (never the crawler's address).

    When the crawler says it can't reach its book catalogue, the reply says so first:
    "0 matches so far" alone would read as "there are none".
    """
    per_keyword = Counter({keyword: count for keyword, count in totals["totals"].items() if count})
    if catalogue is not None and catalogue.reachable is False:
        reply = (
            f"Beep boop! I can't reach the book catalogue{_since(catalogue.since)}, so I can't read"
            f" more books until it is back. So far I have found {per_keyword.total()} matches"
            " in books matching your request."
        )
    else:
        reply = (
            f"Beep boop! I have found {per_keyword.total()} matches so far in books matching your request."
        )
    if per_keyword:
        breakdown = ", ".join(f"{keyword}: {count}" for keyword, count in per_keyword.most_common())
        books = totals["books"]
        reply += f" {breakdown} (in {books} book{'s' if books != 1 else ''})."
    if books_read is not None:
        reply += f" I have read {books_read} book{'s' if books_read != 1 else ''} so far."
    return reply


def _since(moment: str | None) -> str:
    """ " since 21:30 UTC" (or with the date, if not today); nothing if unknown or unreadable."""
    try:
        when = datetime.fromisoformat(moment or "").astimezone(UTC)
    except ValueError:
        return ""
    if when.date() == datetime.now(UTC).date():
        return f" since {when:%H:%M} UTC"
    return f" since {when:%Y-%m-%d %H:%M} UTC"


async def answer_stats(crawler: CrawlerClient, query: StatsQuery | CommandError, timeout: float) -> str:
    """Every failure of the crawler or the query becomes an honest, short reply.

    ``timeout`` bounds the calls to the crawler, in-process as well as over HTTP,
    so the user's POST never hangs on a stuck crawler.
    """
    if isinstance(query, CommandError):
        return f"Beep boop! {query.reason}"
    # Side by side: a slow crawler costs the user one timeout, not one per call.
    totals, status = await asyncio.gather(
        asyncio.wait_for(crawler.totals(query.keywords, query.title), timeout),
        asyncio.wait_for(crawler.status(), timeout),
        return_exceptions=True,
    )
    if isinstance(totals, CrawlerNotConfigured):
        return NOT_CONFIGURED_REPLY
    if isinstance(totals, CrawlerRefused):
        return f"Beep boop! The crawler can't answer that: {totals}. {STATS_HELP}"
    if isinstance(totals, (CrawlerUnavailable, asyncio.TimeoutError)):
        log.warning("/stats failed: %s", totals or "the crawler did not answer in time")
        return UNAVAILABLE_REPLY
    if isinstance(totals, BaseException):
        raise totals
    if isinstance(status, BaseException) and not isinstance(
        status, (CrawlerNotConfigured, CrawlerUnavailable, asyncio.TimeoutError)
    ):
        raise status
    # None: the original crawler has no /status; the counts alone still answer.
    known = status if isinstance(status, CrawlerStatus) else None
    reply = describe_totals(
        totals, known.books_counted if known else None, known.catalogue if known else None
    )
    if known is not None:
        tracked = set(getattr(known, "keywords", None) or ())
        unknown = [keyword for keyword in query.keywords if tracked and keyword not in tracked]
        if unknown:
            reply += f" I don't count {', '.join(unknown)}; I count {', '.join(sorted(tracked))}."
    return reply
