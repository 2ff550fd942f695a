"""CORS for the api, as the original allows it: any http(s) origin by default.

The headers are added to every answer of the api (``http_errors.JsonAnswers``'
``finish``); a stream, whose headers leave before its handler returns, adds them
itself before it starts.

CORS alone does not stop a browser from *sending* a request: a "simple" request
(a form POST, or fetch with ``Content-Type: text/plain`` and ``mode: "no-cors"``)
goes out without a preflight, and only its answer is hidden from the page. So
when ``API_CORS_ORIGINS`` names the origins it trusts, a request that could change
something and comes from any other origin is refused: by the handler's first step
(``check_write``), or, for a method or path no route takes, instead of the 405 or 404.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aiohttp import web

from .http_errors import ClientError

ALLOWED_METHODS = "GET, POST, PUT, DELETE, OPTIONS"
PREFLIGHT_MAX_AGE_SECONDS = "300"
ANY_ORIGIN = "*"
# Methods that change nothing, so any origin may send them (their answers stay
# unreadable to a page the policy does not allow).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Sec-Fetch-Site values a browser sets only for a request the page's own origin made,
# or one the user made (typed URL, bookmark): a hostile page cannot produce either.
TRUSTED_FETCH_SITES = frozenset({"same-origin", "none"})

log = logging.getLogger(__name__)


def path_methods(request: web.Request) -> str | None:
    """The methods the requested path answers (for ``Allow``), or None if no route has it."""
    refusal = request.match_info.http_exception
    if isinstance(refusal, web.HTTPMethodNotAllowed):
        return ", ".join(sorted(refusal.allowed_methods | {"OPTIONS"}))
    return None


class CorsPolicy:
    def __init__(self, origins: Sequence[str]) -> None:
        self._any = ANY_ORIGIN in origins
        self._origins = frozenset(origin for origin in origins if origin != ANY_ORIGIN)
        if not origins:
            log.warning("API_CORS_ORIGINS is empty: no page on another origin can call this api")

    @property
    def restricted(self) -> bool:
        """True when API_CORS_ORIGINS lists origins (not ``*``): only those may write."""
        return not self._any

    def allows(self, origin: str) -> bool:
        # "null" (sandboxed frames, file: pages, some redirects) is never an allowed origin:
        # it names no site, so any page can arrange to send it.
        if self._any:
            return origin.startswith(("http://", "https://"))
        return origin in self._origins

    def refuses_write(self, request: web.Request) -> str | None:
        """Why a state-changing request must not run (a cross-site write), or None.

        Only with a restricted origin list: with ``*`` every http(s) page may write,
        as with the original. Clients that are not browsers send neither header and pass.
        """
        if not self.restricted or request.method in SAFE_METHODS:
            return None
        if request.headers.get("Sec-Fetch-Site", "").strip().lower() in TRUSTED_FETCH_SITES:
            # The page's own origin (the api and the page behind one host): never cross-site.
            return None
        origin = request.headers.get("Origin")
        if origin is not None:
            if self.allows(origin):
                return None
            return f"origin {origin} is not allowed to change anything here (API_CORS_ORIGINS)"
        if request.headers.get("Sec-Fetch-Site", "").strip().lower() in ("cross-site", "same-site"):
            # A browser that hid the origin (a privacy setting) but says the request is
            # from another site: refuse rather than guess which site.
            return "a request from another site without an Origin is not allowed here (API_CORS_ORIGINS)"
        return None

    def add_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        """A response hook (``http_errors.JsonAnswers``' ``finish``): the answer says who may read it."""
        origin = request.headers.get("Origin")
        response.headers.add("Vary", "Origin")
        if origin and self.allows(origin):
            response.headers["Access-Control-Allow-Origin"] = origin

    def preflight(self, request: web.Request) -> web.Response:
        origin = request.headers.get("Origin", "")
        if not origin or "Access-Control-Request-Method" not in request.headers:
            # A plain OPTIONS: what this path supports (RFC 9110), not every method a preflight
            # may allow; a path that does not exist is a 404 here as for any other method.
            methods = path_methods(request)
            if methods is None:
                raise web.HTTPNotFound()
            return web.Response(status=204, headers={"Allow": methods})
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

    def guard(self, request: web.Request) -> web.StreamResponse | None:
        """For a request no route of the api takes (``http_errors.JsonAnswers``): answer a
        preflight, or refuse a cross-site write; None for everything else."""
        # Every path answers a preflight, including ones that would 404: the browser
        # then reports the real status on the real request. (No route takes OPTIONS.)
        if request.method == "OPTIONS":
            return self.preflight(request)
        self.check_write(request)
        return None

    def check_write(self, request: web.Request) -> None:
        """Refuse a cross-site write (``ClientError``, 403): the first thing a handler that
        changes something does."""
        if reason := self.refuses_write(request):
            log.info("refused %s %s: %s", request.method, request.path, reason)
            raise ClientError(403, reason)
