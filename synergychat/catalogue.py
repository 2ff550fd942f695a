"""What the Gutendex catalogue says: pages of books, and each book's plain-text formats.

Parsed from the catalogue's JSON (docs/CONTRACT.md), leniently: an entry without a
book id is dropped, not the page. A 200 that is no catalogue page is told
apart (``NotACatalogue``) so the crawler can say "check CRAWLER_SOURCE_URL".
``gutendex.py`` fetches the pages and the texts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from yarl import URL

from .counting import resolve_charset

log = logging.getLogger(__name__)


class PassingFault(Exception):
    """Worth retrying: the same request may well work in a moment."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotACatalogue(PassingFault):
    """A 200 answer that is not a catalogue page (an HTML site, some other JSON).

    Retried like any passing fault (a proxy's error page goes away), but after the
    retries the caller is told what it got: usually the source URL is wrong.
    """


@dataclass(frozen=True)
class TextSource:
    """Where a book's plain text is, and the charset its catalogue entry declares."""

    url: str
    charset: str | None = None

    @property
    def is_zip(self) -> bool:
        return URL(self.url).path.lower().endswith(".zip")


@dataclass(frozen=True)
class CatalogueBook:
    id: int
    title: str
    text: TextSource | None


@dataclass(frozen=True)
class CataloguePage:
    url: str
    next_url: str | None
    books: list[CatalogueBook]
    # The page's ``count``: how many books the whole catalogue holds (None if it doesn't say).
    count: int | None = None


def first_page_url(source_url: str) -> str:
    return f"{source_url.rstrip('/')}/books/"


def _http_url(value: str, base: str) -> str | None:
    """``value`` made absolute against ``base``, if it is an http(s) URL."""
    try:
        url = URL(base).join(URL(value.strip()))
    except ValueError:
        return None
    return str(url) if url.scheme in ("http", "https") and url.host else None


def _charset_rank(charset: str | None) -> int:
    if charset is None:
        return 2
    try:
        codec = resolve_charset(charset)
    except LookupError:
        return 4
    if codec == "utf-8":
        return 0 if charset.replace("_", "-").lower() in ("utf-8", "utf8") else 1
    return 3


def pick_plain_text(formats: Mapping[str, Any], base_url: str) -> TextSource | None:
    """The best ``text/plain`` format: not a zip, then UTF-8, US-ASCII, undeclared, others.

    Keys carry a charset (``text/plain; charset=us-ascii``) or none; the original
    only looked for a bare ``text/plain`` key, which the catalogue rarely has.
    """
    best: tuple[tuple[bool, int], TextSource] | None = None
    for key, value in formats.items():
        if not isinstance(key, str) or not isinstance(value, str):
            continue
        media_type, *parameters = key.split(";")
        if media_type.strip().lower() != "text/plain":
            continue
        charset = None
        for parameter in parameters:
            name, _, parameter_value = parameter.partition("=")
            if name.strip().lower() == "charset":
                charset = parameter_value.strip().strip("\"'").lower() or None
        url = _http_url(value, base_url)
        if url is None:
            continue
        source = TextSource(url, charset)
        rank = (source.is_zip, _charset_rank(charset))
        if best is None or rank < best[0]:
            best = (rank, source)
    return best[1] if best else None


def parse_page(body: Any, url: str) -> CataloguePage:
    """A page of the catalogue from its JSON; raises PassingFault if it isn't one."""
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        raise NotACatalogue("not a Gutendex catalogue (got JSON without a results list)")
    next_value = body.get("next")
    next_url = None
    if next_value is not None:
        next_url = _http_url(next_value, url) if isinstance(next_value, str) else None
        if next_url is None:
            raise PassingFault(f"malformed catalogue page: next is {next_value!r}")
    books = []
    for entry in body["results"]:
        book_id = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(book_id, int) or isinstance(book_id, bool) or book_id < 0:
            log.warning("catalogue page %s: skipping an entry without a book id: %.200r", url, entry)
            continue
        title = entry.get("title")
        title = title if isinstance(title, str) and title.strip() else f"Project Gutenberg book {book_id}"
        formats = entry.get("formats")
        text = pick_plain_text(formats, url) if isinstance(formats, dict) else None
        books.append(CatalogueBook(book_id, title, text))
    count = body.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        count = None  # only the crawl's progress needs it: no reason to refuse the page
    return CataloguePage(url, next_url, books, count)
