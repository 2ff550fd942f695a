"""A tiny Gutendex for the container tests: one catalogue page, two short books.

Runs as a script inside a container of the app image (which has aiohttp) on the
test's network, so crawlers under test never reach the public service:
``python3 fake_gutendex.py [PORT]``. Links it hands out are built from the Host
header the crawler used, so they resolve on the same network.
"""

from __future__ import annotations

import sys

from aiohttp import web

# Lines that contain "love": 3 in Frankenstein, 2 in the other; "hate": 1 and 0.
BOOKS = {
    84: (
        "Frankenstein; Or, The Modern Prometheus",
        "I love the sea.\nNothing here.\nThey hate the cold.\nLove and gloves.\nA lovely day.\n",
    ),
    1342: (
        "Pride and Prejudice",
        "It is a truth universally acknowledged.\nIn love.\nNo more.\nLOVE letters.\n",
    ),
}
MATCHES = {"love": 5, "hate": 1}


def book_json(base: str, book_id: int, title: str) -> dict[str, object]:
    return {
        "id": book_id,
        "title": title,
        "authors": [{"name": "Someone", "birth_year": 1797, "death_year": 1851}],
        "subjects": [],
        "bookshelves": [],
        "languages": ["en"],
        "copyright": False,
        "media_type": "Text",
        "download_count": 1000,
        "formats": {
            "text/html": f"{base}/ebooks/{book_id}.html",
            "text/plain; charset=us-ascii": f"{base}/ebooks/{book_id}.txt.utf-8",
            "image/jpeg": f"{base}/cache/{book_id}.jpg",
        },
    }


async def books(request: web.Request) -> web.Response:
    base = str(request.url.origin())
    page = request.query.get("page", "1")
    if page != "1":
        return web.json_response({"detail": "Invalid page."}, status=404)
    results = [book_json(base, book_id, title) for book_id, (title, _) in BOOKS.items()]
    return web.json_response({"count": len(results), "next": None, "previous": None, "results": results})


async def text(request: web.Request) -> web.Response:
    book = BOOKS.get(int(request.match_info["book_id"]))
    if book is None:
        raise web.HTTPNotFound()
    return web.Response(text=book[1], content_type="text/plain", charset="utf-8")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/books", books)
    app.router.add_get("/books/", books)
    app.router.add_get(r"/ebooks/{book_id:\d+}.txt.utf-8", text)
    app.router.add_get("/healthz", healthz)
    return app


if __name__ == "__main__":
    web.run_app(create_app(), port=int(sys.argv[1]) if len(sys.argv) > 1 else 8080, print=None)
