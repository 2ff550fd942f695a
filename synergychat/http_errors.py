"""JSON errors for the parts that answer in JSON (the api, the crawler): ``{"error": ...}``
with the right status, never an HTML page.

A part says how it answers with ``JsonAnswers`` on its app (``JSON_ANSWERS``); the server
applies it to every request the part takes (``server.serving``): the errors its handlers
raise, the ones aiohttp raises before any handler (no such path, no such method) or answers
itself (an ``Expect`` it does not know), and what every answer of the part carries
(``finish``: CORS headers). No middleware and no ``on_response_prepare`` receiver:
aiohttp awaits each of those for every request, and the api's one middleware cost a
``GET /healthz`` 41.6 µs of CPU against 35.5 µs this way, a ``GET /messages`` 56.5 against
51.2 µs (wrk, three runs each; aiohttp's hello world: 34 µs). So an app is served by
``server.ChatAppRunner`` (the roles, and the tests through ``tests/support/chat_server.py``);
under another server its errors are aiohttp's plain text.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger(__name__)

# What the access log shows for a request whose client hung up before the answer
# (nginx's code for it): the client's doing, not a server error.
CLIENT_CLOSED_REQUEST = 499

# Maps an exception a role knows about to (status, message); None for "not mine".
Translate = Callable[[Exception], "tuple[int, str] | None"]
# Something to do to a response before it is sent (its headers).
ResponseHook = Callable[[web.Request, web.StreamResponse], None]
# For a request no route takes: an answer (a CORS preflight), or ClientError to refuse it.
Guard = Callable[[web.Request], "web.StreamResponse | None"]


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


class ClientError(Exception):
    """A request we refuse; becomes ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _unknown(exc: Exception) -> tuple[int, str] | None:
    return None


@dataclass(frozen=True)
class JsonAnswers:
    """How a part answers: every error in JSON (``translate`` names the part's own failures,
    as a 503 for a database that is down); ``guard`` first sees a request no route of the
    part takes (a CORS preflight, a cross-site write with a method it lacks); ``finish``
    is done to every answer before it is sent (a stream, which sends its headers itself,
    calls it first)."""

    translate: Translate = _unknown
    guard: Guard | None = None
    finish: ResponseHook | None = None

    def error_answer(self, request: web.Request, exc: Exception) -> web.StreamResponse:
        """The answer to ``exc``, raised while the part handled ``request`` (``exc`` itself is
        raised again if it is no error: a redirect)."""
        if isinstance(exc, web.HTTPException) and self.guard is not None:
            try:
                if (answer := self.guard(request)) is not None:
                    return answer
            except (ClientError, web.HTTPException) as refused:
                exc = refused
        if isinstance(exc, ClientError):
            return json_error(exc.status, exc.message)
        if isinstance(exc, web.HTTPException):
            if exc.status < 400:
                raise exc
            headers = {name: value for name, value in exc.headers.items() if name.lower() == "allow"}
            # aiohttp's own refusals say why in their text ("Unknown Expect: nonsense"); the
            # rest have its default text, "404: Not Found", of which the reason is enough.
            text = exc.text
            why = exc.reason if not text or text == f"{exc.status}: {exc.reason}" else text
            return json_error(exc.status, why, headers)
        if isinstance(exc, HttpProcessingError):
            # aiohttp's parser refused the body as it arrived (a broken chunk, a body cut
            # short by a half-closed connection): the request is malformed.
            log.info("%s %s: malformed request body: %s", request.method, request.path, exc.message)
            return json_error(400, f"malformed request body: {exc.message}")
        if isinstance(exc, ConnectionResetError):
            # aiohttp raises this (ClientConnectionResetError too) when the client closes
            # its connection while we read the body or write the answer.
            if not client_gone(request):
                return unexpected(request, exc)
            log.info("%s %s: the client closed the connection first (%s)", request.method, request.path, exc)
            return web.Response(status=CLIENT_CLOSED_REQUEST)
        known = self.translate(exc)
        if known is not None:
            log.error("%s %s failed: %s", request.method, request.path, exc)
            return json_error(*known)
        return unexpected(request, exc)


# On a part's app: how it answers (a part without it, the page, keeps aiohttp's text errors).
JSON_ANSWERS = web.AppKey("json_answers", JsonAnswers)


def json_answers(request: web.Request) -> JsonAnswers | None:
    """How the part that took ``request`` answers, if in JSON (the innermost app's)."""
    # A request that wasn't HTTP never reached the router: it has no match info.
    match_info = getattr(request, "_match_info", None)
    if match_info is None or not match_info.apps:
        return None
    answers: JsonAnswers | None = match_info.apps[-1].get(JSON_ANSWERS)
    return answers


def client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def unexpected(request: web.Request, exc: Exception) -> web.Response:
    log.error("unexpected error on %s %s", request.method, request.path, exc_info=exc)
    return json_error(500, "internal error")


def plain_errors_as_json(request: web.Request, response: web.StreamResponse) -> None:
    """The few errors aiohttp answers itself (an ``Expect`` it does not know: 417) come in
    plain text; make them JSON too (``server.stamp`` does this for the parts that answer
    in JSON)."""
    if response.status < 400 or not isinstance(response, web.Response):
        return
    if response.content_type == "application/json" or not isinstance(response.body, bytes):
        return  # already JSON, or a payload object (a file): not an error page of aiohttp's
    text = response.body.decode("utf-8", "replace").strip() or response.reason
    response.content_type = "application/json"
    response.charset = "utf-8"
    body = json.dumps({"error": text})
    response.text = body
    # aiohttp may have counted the plain body's length already.
    response.headers["Content-Length"] = str(len(body.encode("utf-8")))
