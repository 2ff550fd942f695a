"""Small aiohttp apps that stand in for parts of a deployment the doctor must recognise:
the original Go api and page, a crawler, a Gutendex, and a path-routing reverse proxy.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler
from yarl import URL

from tests.support.relay import relay

SESSION = web.AppKey("proxy_session", aiohttp.ClientSession)
ORIGINAL_INDEX_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="UTF-8"><title>SynergyChat</title>
<script src="https://cdn.tailwindcss.com"></script>
<script defer src="app.js"></script></head>
<body><div id="messages"></div></body></html>
"""
ORIGINAL_APP_JS = """document.addEventListener('DOMContentLoaded', function () {
    fetch(`${apiUrl}/messages`);
});
"""


def original_web_app(api_url: str) -> web.Application:
    """The original Go web: the page, and app.js with `const apiUrl = '...';` prepended."""

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=ORIGINAL_INDEX_HTML, content_type="text/html")

    async def app_js(request: web.Request) -> web.Response:
        script = f"const apiUrl = '{api_url}';\n\n" + ORIGINAL_APP_JS
        return web.Response(text=script, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/app.js", app_js)
    return app


ORIGINAL_MESSAGES = b'[{"AuthorUsername": "john_doe", "Text": "Hello, world!"}]'


def original_api_app(messages_body: bytes = ORIGINAL_MESSAGES) -> web.Application:
    """The original Go api as seen from outside: healthz, messages, permissive CORS, and
    404 on everything else (GET /, /readyz, /messages/stream)."""

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin", "")
        if request.method == "OPTIONS":
            response: web.StreamResponse = web.Response(status=200)
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, DELETE, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = request.headers.get(
                "Access-Control-Request-Headers", ""
            )
        else:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                response = web.Response(status=exc.status, text="404 page not found\n")
        if origin.startswith(("http://", "https://")):
            response.headers["Access-Control-Allow-Origin"] = origin
        return response

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def messages(request: web.Request) -> web.Response:
        return web.Response(body=messages_body, content_type="application/json")

    app = web.Application(middlewares=[cors])
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/messages", messages)
    return app


def crawler_app(books_counted: int = 3) -> web.Application:
    """A crawler that answers its health check and its progress."""

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def status(request: web.Request) -> web.Response:
        return web.json_response({"state": "crawling", "books_counted": books_counted, "pages_done": 1})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response([])

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/status", status)
    app.router.add_get("/stats", stats)
    return app


def gutendex_app() -> web.Application:
    """A one-book Gutendex, shaped like the real one (docs/CONTRACT.md)."""

    async def books(request: web.Request) -> web.Response:
        text_url = str(request.url.with_path("/ebooks/84.txt.utf-8").with_query(None))
        return web.json_response(
            {
                "count": 1,
                "next": None,
                "previous": None,
                "results": [
                    {
                        "id": 84,
                        "title": "Frankenstein; Or, The Modern Prometheus",
                        "authors": [
                            {"name": "Shelley, Mary Wollstonecraft", "birth_year": 1797, "death_year": 1851}
                        ],
                        "languages": ["en"],
                        "copyright": False,
                        "media_type": "Text",
                        "download_count": 78467,
                        "formats": {"text/plain; charset=us-ascii": text_url},
                    }
                ],
            }
        )

    async def text(request: web.Request) -> web.Response:
        return web.Response(text="I love you.\nI hate this.\nLove and fear.\n")

    app = web.Application()
    app.router.add_get("/books/", books)
    app.router.add_get("/ebooks/84.txt.utf-8", text)
    return app


def canned_app(status: int, body: str, content_type: str = "text/plain") -> web.Application:
    """Answers every request with the same thing: a gateway's error page, a dead route."""

    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=status, text=body, content_type=content_type)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


def proxy_app(routes: list[tuple[str, str]]) -> web.Application:
    """A reverse proxy routing by path prefix, longest first, like nginx's ``location``.

    ``routes`` holds (prefix, upstream): a prefix ending in "/" is stripped and the
    rest appended to the upstream URL (nginx: ``location /api/ { proxy_pass http://api/; }``).
    Paths no route matches get 404. Bodies stream, so an event stream passes through.
    """
    ordered = sorted(routes, key=lambda route: len(route[0]), reverse=True)

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            app[SESSION] = session
            yield

    async def forward(request: web.Request) -> web.StreamResponse:
        path = request.rel_url.raw_path
        for prefix, upstream in ordered:
            if path.startswith(prefix) or path + "/" == prefix:
                rest = path[len(prefix) :] if path.startswith(prefix) else ""
                break
        else:
            return web.Response(status=404, text="no route\n")
        target = URL(upstream.rstrip("/") + "/" + rest, encoded=True).with_query(request.rel_url.query)
        return await relay(request, request.app[SESSION], target, {"X-Forwarded-Host": request.host})

    app = web.Application()
    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def page_with_config(api_url: str, csp: str | None = None) -> web.Application:
    """A page shaped like ours, with a chosen API_URL and Content-Security-Policy."""
    config = json.dumps({"apiUrl": api_url}).replace("<", "\\u003c").replace(">", "\\u003e")
    html = (
        "<!DOCTYPE html><html><head><title>SynergyChat</title>"
        f'<script id="synergychat-config" type="application/json">{config}</script>'
        '<script src="app.js" defer></script></head><body></body></html>'
    )

    async def index(request: web.Request) -> web.Response:
        headers = {"Content-Security-Policy": csp} if csp else None
        return web.Response(text=html, content_type="text/html", headers=headers)

    app = web.Application()
    app.router.add_get("/", index)
    return app
