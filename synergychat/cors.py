"""CORS for the api, as the original allows it: any http(s) origin by default.

The headers are added when a response is prepared (not in a middleware) so
streamed responses, whose headers leave before the handler returns, get them too.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ALLOWED_METHODS = "GET, POST, PUT, DELETE, OPTIONS"
PREFLIGHT_MAX_AGE_SECONDS = "300"
ANY_ORIGIN = "*"

log = logging.getLogger(__name__)


class CorsPolicy:
    def __init__(self, origins: Sequence[str]) -> None:
        self._any = ANY_ORIGIN in origins
        self._origins = frozenset(origin for origin in origins if origin != ANY_ORIGIN)
        if not origins:
            log.warning("API_CORS_ORIGINS is empty: no page on another origin can call this api")

    def allows(self, origin: str) -> bool:
        if self._any:
            return origin.startswith(("http://", "https://"))
        return origin in self._origins

    async def on_response_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get("Origin")
        response.headers.add("Vary", "Origin")
        if origin and self.allows(origin):
            response.headers["Access-Control-Allow-Origin"] = origin

    async def preflight(self, request: web.Request) -> web.Response:
        origin = request.headers.get("Origin", "")
        if not origin or "Access-Control-Request-Method" not in request.headers:
            # A plain OPTIONS: say what the api supports.
            return web.Response(status=204, headers={"Allow": ALLOWED_METHODS})
        if not self.allows(origin):
            return web.json_response(
                {"error": f"origin {origin} is not allowed (API_CORS_ORIGINS)"}, status=403
            )
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Methods": ALLOWED_METHODS,
                "Access-Control-Allow-Headers": request.headers.get("Access-Control-Request-Headers", "*"),
                "Access-Control-Max-Age": PREFLIGHT_MAX_AGE_SECONDS,
            },
        )

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        # Every path answers a preflight, including ones that would 404: the browser
        # then reports the real status on the real request.
        if request.method == "OPTIONS":
            return await self.preflight(request)
        return await handler(request)
