"""A fake Gutendex catalogue (and Gutenberg file server) with faults to order.

Pages look like the real ``GET /books/?page=N`` answers (docs/CONTRACT.md); book texts
are served from ``/files/NAME``. Faults are queued per path: each request to the
path takes the next fault, and once the queue is empty the path answers normally.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from aiohttp import web

# What a request can be made to suffer.
HTTP_500 = "500"
HTTP_503 = "503"
HTTP_429 = "429"  # with Retry-After: FakeGutendex.retry_after
TIMEOUT = "timeout"  # no answer for longer than the client waits
TRUNCATE = "truncate"  # Content-Length promises more than is sent before closing
DROP = "drop"  # the connection closes before any answer
MALFORMED = "malformed"  # 200 with broken JSON (or a broken body)
NOT_FOUND = "404"
HTML = "html"  # 200 with an HTML page: a web site, not a catalogue
NOT_A_PAGE = "not-a-page"  # 200 with JSON that has no results list
TRICKLE = "trickle"  # 200, then one byte a second, never ending (until the client gives up)

Body = bytes | Callable[[], Iterator[bytes]]


@dataclass
class FakeBook:
    id: int
    title: str
    # format key -> file name under /files/ (or an absolute URL, served elsewhere).
    formats: dict[str, str]
    files: dict[str, Body] = field(default_factory=dict)

    @classmethod
    def plain(cls, book_id: int, title: str, text: str | bytes, charset: str | None = "utf-8") -> FakeBook:
        data = text if isinstance(text, bytes) else text.encode(charset or "utf-8")
        key = f"text/plain; charset={charset}" if charset else "text/plain"
        name = f"{book_id}.txt"
        return cls(
            book_id,
            title,
            {"text/html": f"{book_id}.html", key: name, "application/epub+zip": f"{book_id}.epub"},
            {name: data, f"{book_id}.html": b"<html>not counted</html>"},
        )


def zipped(name: str, text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("readme.html", "<p>love love love</p>")
        archive.writestr(name, text)
    return buffer.getvalue()


class FakeGutendex:
    def __init__(self, books: Iterable[FakeBook], page_size: int = 3) -> None:
        self.books = list(books)
        self.page_size = page_size
        self.faults: defaultdict[str, list[str]] = defaultdict(list)
        self.retry_after = "0"
        # Requests to a path wait here until the event is set (to freeze the crawl in place).
        self.gates: dict[str, asyncio.Event] = {}
        self.requests: Counter[str] = Counter()
        # (time.monotonic() on arrival, path) of every request: the pace a fleet of crawlers keeps.
        self.request_times: list[tuple[float, str]] = []
        # Whole bodies served per file: a book counted twice would show here.
        self.served: Counter[str] = Counter()
        self.base_url = ""
        # The loop serving it when it runs in a thread (tests/process), to open gates from outside.
        self.loop: asyncio.AbstractEventLoop | None = None
        # Paths whose trickle the client gave up on (it closed the connection).
        self.abandoned: Counter[str] = Counter()
        # Page number -> the path its ``next`` points to instead (a catalogue that loops).
        self.next_pages: dict[int, str] = {}
        self._closing = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/books/", self.page)
        app.router.add_get("/files/{name}", self.file)
        app.on_shutdown.append(self._close)
        return app

    def fail(self, path: str, *faults: str) -> None:
        self.faults[path].extend(faults)

    def hold(self, path: str) -> asyncio.Event:
        self.gates[path] = asyncio.Event()
        return self.gates[path]

    def page_path(self, number: int) -> str:
        return "/books/" if number == 1 else f"/books/?page={number}"

    async def _close(self, app: web.Application) -> None:
        self._closing.set()
        for gate in self.gates.values():
            gate.set()

    async def _suffer(self, request: web.Request, path: str) -> web.StreamResponse | None:
        self.requests[path] += 1
        self.request_times.append((time.monotonic(), path))
        gate = self.gates.get(path)
        if gate is not None:
            await gate.wait()
        if not self.faults[path]:
            return None
        fault = self.faults[path].pop(0)
        if fault == HTML:
            return web.Response(text="<!doctype html><title>Welcome</title>", content_type="text/html")
        if fault == NOT_A_PAGE:
            return web.json_response({"detail": "Not a catalogue."})
        if fault in (HTTP_500, HTTP_503, NOT_FOUND):
            return web.json_response({"detail": "fault"}, status=int(fault))
        if fault == HTTP_429:
            return web.json_response(
                {"detail": "slow down"}, status=429, headers={"Retry-After": self.retry_after}
            )
        if fault == TIMEOUT:
            try:
                await asyncio.wait_for(self._closing.wait(), 5)
            except TimeoutError:
                pass
            return web.Response(text="too late")
        if fault == TRICKLE:
            response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
            await response.prepare(request)
            try:
                while not self._closing.is_set():
                    await response.write(b"l")
                    try:
                        await asyncio.wait_for(self._closing.wait(), 1.0)
                    except TimeoutError:
                        pass
            except ConnectionError:
                self.abandoned[path] += 1
            except asyncio.CancelledError:
                # The test server cancels a handler whose client went away.
                self.abandoned[path] += 1
                raise
            return response
        if fault == DROP:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        return web.Response(body=fault.encode())  # TRUNCATE and MALFORMED are applied by the caller

    def _pending(self, path: str) -> str | None:
        return self.faults[path][0] if self.faults[path] else None

    async def page(self, request: web.Request) -> web.StreamResponse:
        number = int(request.query.get("page", "1"))
        path = self.page_path(number)
        pending = self._pending(path)
        answer = await self._suffer(request, path)
        if answer is not None and pending not in (MALFORMED, TRUNCATE):
            return answer
        pages = max(1, -(-len(self.books) // self.page_size))
        if number < 1 or number > pages:
            return web.json_response({"detail": "Invalid page."}, status=404)
        shown = self.books[(number - 1) * self.page_size : number * self.page_size]
        next_url = f"{self.base_url}/books/?page={number + 1}" if number < pages else None
        if number in self.next_pages:
            next_url = self.base_url + self.next_pages[number]
        body = json.dumps(
            {
                "count": len(self.books),
                "next": next_url,
                "previous": (
                    f"{self.base_url}/books/?page={number - 1}"
                    if number > 2
                    else f"{self.base_url}/books/"
                    if number == 2
                    else None
                ),
                "results": [self._entry(book) for book in shown],
            }
        ).encode()
        if pending == MALFORMED:
            return web.Response(body=body[: len(body) // 2], content_type="application/json")
        if pending == TRUNCATE:
            return await self._truncated(request, body, "application/json")
        return web.Response(body=body, content_type="application/json")

    def _entry(self, book: FakeBook) -> dict[str, object]:
        return {
            "id": book.id,
            "title": book.title,
            "authors": [{"name": "Shelley, Mary Wollstonecraft", "birth_year": 1797, "death_year": 1851}],
            "summaries": [],
            "translators": [],
            "subjects": ["Fiction"],
            "bookshelves": ["Best Books Ever Listings"],
            "languages": ["en"],
            "copyright": False,
            "media_type": "Text",
            "formats": {
                key: value if value.startswith("http") else f"{self.base_url}/files/{value}"
                for key, value in book.formats.items()
            },
            "download_count": 1000 - book.id % 1000,
        }

    async def file(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = f"/files/{name}"
        pending = self._pending(path)
        answer = await self._suffer(request, path)
        if answer is not None and pending not in (MALFORMED, TRUNCATE):
            return answer
        body = next((book.files[name] for book in self.books if name in book.files), None)
        if body is None:
            return web.Response(status=404, text="no such file")
        content_type = "application/zip" if name.endswith(".zip") else "text/plain"
        if callable(body):
            response = web.StreamResponse(headers={"Content-Type": f"{content_type}; charset=utf-8"})
            await response.prepare(request)
            for piece in body():
                await response.write(piece)
            await response.write_eof()
            self.served[name] += 1
            return response
        if pending == TRUNCATE:
            return await self._truncated(request, body, content_type)
        self.served[name] += 1
        return web.Response(body=body, content_type=content_type)

    async def _truncated(self, request: web.Request, body: bytes, content_type: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": content_type})
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        assert request.transport is not None
        request.transport.close()
        return response
