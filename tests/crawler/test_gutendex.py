"""The catalogue client on its own: format choice, page parsing, retry timing."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest

from synergychat.catalogue import PassingFault, TextSource, first_page_url, parse_page, pick_plain_text
from synergychat.gutendex import (
    BookUnavailable,
    CatalogueUnavailable,
    Gutendex,
    PageNotFound,
    RetryPolicy,
    parse_retry_after,
)

from . import fake_gutendex as faults
from .fake_gutendex import FakeBook, FakeGutendex

BASE = "https://gutendex.example/books/?page=2"
ServeFake = Callable[..., Awaitable[FakeGutendex]]


@pytest.mark.parametrize(
    ("formats", "expected"),
    [
        # The real catalogue's shape: us-ascii key on a .txt.utf-8 link.
        (
            {"text/html": "h", "text/plain; charset=us-ascii": "https://g.org/84.txt.utf-8"},
            TextSource("https://g.org/84.txt.utf-8", "us-ascii"),
        ),
        # UTF-8 is preferred over US-ASCII, which is preferred over undeclared and others.
        (
            {
                "text/plain; charset=iso-8859-1": "https://g.org/a.txt",
                "text/plain; charset=us-ascii": "https://g.org/b.txt",
                "text/plain": "https://g.org/c.txt",
                "text/plain; charset=utf-8": "https://g.org/d.txt",
            },
            TextSource("https://g.org/d.txt", "utf-8"),
        ),
        (
            {"text/plain; charset=iso-8859-1": "https://g.org/a.txt", "text/plain": "https://g.org/c.txt"},
            TextSource("https://g.org/c.txt", None),
        ),
        # Any plain text beats a zip, even UTF-8 in a zip.
        (
            {
                "text/plain; charset=utf-8": "https://g.org/84-0.zip",
                "text/plain; charset=iso-8859-1": "https://g.org/84.txt",
            },
            TextSource("https://g.org/84.txt", "iso-8859-1"),
        ),
        # A zip if that is all there is.
        (
            {"text/plain; charset=utf-8": "https://g.org/84-0.ZIP"},
            TextSource("https://g.org/84-0.ZIP", "utf-8"),
        ),
        # Key spelling varies: case, spaces, quotes.
        ({'Text/Plain;Charset="UTF-8"': "https://g.org/x.txt"}, TextSource("https://g.org/x.txt", "utf-8")),
        # Relative links resolve against the page.
        ({"text/plain": "/files/9.txt"}, TextSource("https://gutendex.example/files/9.txt", None)),
        # Nothing plain, or nothing usable: no text.
        ({"text/html": "https://g.org/x.html", "application/epub+zip": "https://g.org/x.epub"}, None),
        ({"text/plain": "ftp://g.org/x.txt", "text/plain; charset=utf-8": 42}, None),
        ({}, None),
    ],
)
def test_pick_plain_text(formats: dict[str, object], expected: TextSource | None) -> None:
    assert pick_plain_text(formats, BASE) == expected


def test_zip_detection_ignores_the_query() -> None:
    assert TextSource("https://g.org/a.zip?x=1").is_zip
    assert not TextSource("https://g.org/a.zip.txt").is_zip


def test_parse_page_keeps_good_entries_and_drops_bad_ones() -> None:
    page = parse_page(
        {
            "count": 4,
            "next": "/books/?page=3",
            "results": [
                {"id": 1, "title": "One", "formats": {"text/plain": "https://g.org/1.txt"}},
                {"id": "2", "title": "Bad id"},
                {"id": True, "title": "Bool id"},
                "not an object",
                {"id": 3, "formats": []},
            ],
        },
        BASE,
    )
    assert page.next_url == "https://gutendex.example/books/?page=3"
    assert [(book.id, book.title, book.text) for book in page.books] == [
        (1, "One", TextSource("https://g.org/1.txt")),
        (3, "Project Gutenberg book 3", None),
    ]


@pytest.mark.parametrize(
    "body",
    [
        # Each is not a page at all: retried as a passing fault.
        [],
        {"count": 1},
        {"results": "nope"},
        {"results": [], "next": 7},
        {"results": [], "next": "mailto:x@y"},
    ],
)
def test_parse_page_rejects_what_is_not_a_page(body: object) -> None:
    with pytest.raises(PassingFault):
        parse_page(body, BASE)


def test_first_page_url() -> None:
    assert first_page_url("https://gutendex.com") == "https://gutendex.com/books/"
    assert first_page_url("http://mirror.local/gutendex/") == "http://mirror.local/gutendex/books/"


def test_retry_after() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    later = datetime.now(UTC) + timedelta(seconds=90)
    assert 80 < (parse_retry_after(format_datetime(later, usegmt=True)) or 0) <= 90


def test_backoff_grows_with_jitter_and_caps() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0, max_retry_after=30.0)
    rng = random.Random(7)
    for attempt, step in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        delays = {policy.delay(attempt, rng) for _ in range(50)}
        assert all(step / 2 <= delay <= step for delay in delays)
        assert len(delays) > 1  # jittered, so clients don't retry in lockstep
    # Retry-After wins over the backoff, up to a cap.
    assert policy.delay(1, rng, retry_after=12.0) == 12.0
    assert policy.delay(1, rng, retry_after=3600.0) == 30.0


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_retry_after_is_honoured(serve_fake: ServeFake, session: aiohttp.ClientSession) -> None:
    gutendex = await serve_fake([FakeBook.plain(1, "One", "love\n")])
    gutendex.retry_after = "7"
    gutendex.fail("/files/1.txt", faults.HTTP_429, faults.HTTP_500)
    sleeps = Sleeps()
    client = Gutendex(session, RetryPolicy(attempts=3, base_delay=1.0), sleep=sleeps)
    counts = await client.count_book(TextSource(f"{gutendex.base_url}/files/1.txt"), ["love"])
    assert counts == {"love": 1}
    assert sleeps.delays[0] == 7.0
    assert 1.0 <= sleeps.delays[1] <= 2.0  # the second attempt's backoff step


async def test_a_book_is_given_up_after_its_attempts(
    serve_fake: ServeFake, session: aiohttp.ClientSession
) -> None:
    gutendex = await serve_fake([FakeBook.plain(1, "One", "love\n")])
    gutendex.fail("/files/1.txt", *[faults.HTTP_503] * 3)
    sleeps = Sleeps()
    client = Gutendex(session, RetryPolicy(attempts=3, base_delay=1.0, max_delay=100.0), sleep=sleeps)
    with pytest.raises(BookUnavailable, match="HTTP 503 \\(gave up after 3 attempts\\)"):
        await client.count_book(TextSource(f"{gutendex.base_url}/files/1.txt"), ["love"])
    assert len(sleeps.delays) == 2 and 1.0 <= sleeps.delays[1] <= 2.0


async def test_page_errors(serve_fake: ServeFake, session: aiohttp.ClientSession) -> None:
    gutendex = await serve_fake()
    client = Gutendex(session, RetryPolicy(attempts=2), sleep=Sleeps())
    page = await client.page(gutendex.base_url + "/books/")
    assert [book.id for book in page.books] == [84, 1342, 11]
    assert page.next_url == gutendex.base_url + "/books/?page=2"
    # Past the last page the catalogue says 404: the end, not an error to retry.
    with pytest.raises(PageNotFound):
        await client.page(gutendex.base_url + "/books/?page=99")
    assert gutendex.requests["/books/?page=99"] == 1
    gutendex.fail("/books/?page=2", faults.MALFORMED, faults.MALFORMED)
    with pytest.raises(CatalogueUnavailable, match="malformed JSON"):
        await client.page(gutendex.base_url + "/books/?page=2")


async def test_a_zip_bomb_is_capped(serve_fake: ServeFake, session: aiohttp.ClientSession) -> None:
    archive = faults.zipped("1.txt", "love\n" * 200_000)
    assert len(archive) < 20_000  # a million bytes of text deflate to almost nothing
    gutendex = await serve_fake([FakeBook(1, "Bomb", {"text/plain": "1.zip"}, {"1.zip": archive})])
    client = Gutendex(session, RetryPolicy(attempts=1), sleep=Sleeps())
    with pytest.raises(BookUnavailable, match="too large"):
        await client.count_book(TextSource(f"{gutendex.base_url}/files/1.zip"), ["love"], max_bytes=100_000)
    assert await client.count_book(TextSource(f"{gutendex.base_url}/files/1.zip"), ["love"]) == {
        "love": 200_000
    }


async def test_an_unknown_charset_falls_back_to_what_the_server_says(
    serve_fake: ServeFake, session: aiohttp.ClientSession
) -> None:
    gutendex = await serve_fake([FakeBook.plain(1, "One", "café love\n")])
    client = Gutendex(session, RetryPolicy(attempts=1), sleep=Sleeps())
    counts = await client.count_book(TextSource(f"{gutendex.base_url}/files/1.txt", "x-klingon"), ["café"])
    assert counts == {"café": 1}


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (faults.HTML, r"^not a Gutendex catalogue \(got text/html\) \(gave up after 2 attempts\)$"),
        (faults.NOT_A_PAGE, r"^not a Gutendex catalogue \(got JSON without a results list\)"),
        # Broken JSON that claims to be JSON: named as such, in case it is only a glitch.
        (faults.MALFORMED, r"^not a Gutendex catalogue \(got application/json, malformed JSON: "),
    ],
)
async def test_a_page_that_is_not_a_catalogue_says_what_it_got(
    serve_fake: ServeFake, session: aiohttp.ClientSession, fault: str, message: str
) -> None:
    gutendex = await serve_fake()
    client = Gutendex(session, RetryPolicy(attempts=2), sleep=Sleeps())
    gutendex.fail("/books/", fault, fault)
    with pytest.raises(CatalogueUnavailable, match=message) as caught:
        await client.page(gutendex.base_url + "/books/")
    assert caught.value.not_a_catalogue
    # Still a passing fault: retried, and the next good answer is taken.
    assert gutendex.requests["/books/"] == 2
    gutendex.fail("/books/", fault)
    assert [book.id for book in (await client.page(gutendex.base_url + "/books/")).books] == [84, 1342, 11]


async def test_a_page_that_does_not_answer_is_not_called_not_a_catalogue(
    serve_fake: ServeFake, session: aiohttp.ClientSession
) -> None:
    gutendex = await serve_fake()
    client = Gutendex(session, RetryPolicy(attempts=2), sleep=Sleeps())
    gutendex.fail("/books/", faults.HTML, faults.HTTP_503)
    with pytest.raises(CatalogueUnavailable, match="HTTP 503") as caught:
        await client.page(gutendex.base_url + "/books/")
    # What counts is the last attempt: a server error is not a wrong address.
    assert not caught.value.not_a_catalogue
