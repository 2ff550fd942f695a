"""The web role: the chat page, its script and stylesheet, from the package."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from yarl import URL

from . import keys
from .readiness import healthz, readiness_response
from .settings import WebSettings

STATIC_DIR = Path(__file__).parent / "static"
CONFIG_PLACEHOLDER = "__SYNERGYCHAT_CONFIG__"
# The page and script change with every release; the original serves them uncached too.
NO_CACHE = "no-cache"


def page_config_json(settings: WebSettings) -> str:
    """API_URL reaches the script as JSON data, escaped so it can't close the <script> element."""
    encoded = json.dumps({"apiUrl": settings.api_url})
    return encoded.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def api_origin(api_url: str) -> str | None:
    """The origin of an absolute API_URL (for CSP connect-src); None when relative or empty."""
    url = URL(api_url.strip())
    if url.scheme in ("http", "https") and url.host:
        return str(url.origin())
    if not url.scheme and url.host:
        # Scheme-relative ("//api.example"): a CSP host-source takes the page's scheme too.
        return f"{url.host}:{url.explicit_port}" if url.explicit_port else url.host
    return None


def content_security_policy(settings: WebSettings) -> str:
    connect = "'self'"
    if origin := api_origin(settings.api_url):
        connect += f" {origin}"
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src {connect}",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def security_headers(settings: WebSettings) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(settings),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": NO_CACHE,
    }


class WebHandlers:
    def __init__(self, settings: WebSettings) -> None:
        self._headers = security_headers(settings)

    async def index(self, request: web.Request) -> web.Response:
        return web.Response(
            text=request.app[keys.INDEX_HTML],
            content_type="text/html",
            charset="utf-8",
            headers=self._headers,
        )

    async def static_file(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = request.app[keys.STATIC_FILES].get(name)
        if path is None or name == "index.html":
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers=self._headers)

    async def readyz(self, request: web.Request) -> web.Response:
        # Serving the page needs nothing else; parts composed with it (under `all`) add theirs.
        ready, checks = True, {"web": {"ok": True, "detail": "serving"}}
        if composed := request.app.get(keys.COMPOSED_READINESS):
            parts_ready, parts_checks = await composed()
            ready, checks = parts_ready, {**checks, **parts_checks}
        return readiness_response(ready, checks)


async def load_static(app: web.Application) -> AsyncIterator[None]:
    # Only files that ship in static/ are served, looked up by exact name: no path escapes.
    app[keys.STATIC_FILES] = {path.name: path for path in STATIC_DIR.iterdir() if path.is_file()}
    template = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    app[keys.INDEX_HTML] = template.replace(CONFIG_PLACEHOLDER, page_config_json(app[keys.WEB_SETTINGS]))
    yield


def create_web_app(settings: WebSettings) -> web.Application:
    app = web.Application()
    app[keys.WEB_SETTINGS] = settings
    app.cleanup_ctx.append(load_static)
    handlers = WebHandlers(settings)
    app.router.add_get("/", handlers.index)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", handlers.readyz)
    app.router.add_get("/{name}", handlers.static_file)
    return app
