"""JSON errors for every role: ``{"error": ...}`` with the right status, never an HTML page."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger(__name__)

# What the access log shows for a request whose client hung up before the answer
# (nginx's code for it): the client's doing, not a server error.
CLIENT_CLOSED_REQUEST = 499

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Maps an exception a role knows about to (status, message); None for "not mine".
Translate = Callable[[Exception], "tuple[int, str] | None"]
# Something to do to a response before it is sent (its headers).
ResponseHook = Callable[[web.Request, web.StreamResponse], None]
# Before a part's handler: an answer instead of it (None: go on), or ClientError to refuse.
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


def json_errors(
    translate: Translate = _unknown, guard: Guard | None = None, finish: ResponseHook | None = None
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """A part's one middleware: every error becomes JSON (``translate`` names the part's own
    failures); ``guard`` may answer a request before its handler (a CORS preflight) or
    refuse it (raise ``ClientError``); ``finish`` is done to every answer not yet sent
    (headers). A part that uses it marks its app with ``ANSWERS_IN_JSON``.

    One middleware, no ``on_response_prepare`` receiver: aiohttp awaits each middleware and
    each receiver for every request. The api's two middlewares and two receivers took
    about a quarter of a ``GET /healthz``'s CPU time (13 of 51 µs under wrk); with this
    one middleware and the server's ``stamp`` it takes 43 µs. A handler that prepares its
    own response (a stream) calls ``finish`` itself first (see ``server.stamp``).
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = (guard(request) if guard is not None else None) or await handler(request)
        except ClientError as exc:
            response = json_error(exc.status, exc.message)
        except web.HTTPException as exc:
            if exc.status < 400:
                if finish is not None:
                    finish(request, exc)
                raise
            headers = {name: value for name, value in exc.headers.items() if name.lower() == "allow"}
            response = json_error(exc.status, exc.reason, headers)
        except HttpProcessingError as exc:
            # aiohttp's parser refused the body as it arrived (a broken chunk, a body cut
            # short by a half-closed connection): the request is malformed.
            log.info("%s %s: malformed request body: %s", request.method, request.path, exc.message)
            response = json_error(400, f"malformed request body: {exc.message}")
        except ConnectionResetError as exc:
            # aiohttp raises this (ClientConnectionResetError too) when the client closes
            # its connection while we read the body or write the answer.
            if not client_gone(request):
                response = unexpected(request, exc)
            else:
                log.info(
                    "%s %s: the client closed the connection first (%s)", request.method, request.path, exc
                )
                response = web.Response(status=CLIENT_CLOSED_REQUEST)
        except Exception as exc:  # noqa: BLE001 - the app's last guard: any failure becomes a JSON 500
            known = translate(exc)
            if known is not None:
                log.error("%s %s failed: %s", request.method, request.path, exc)
                response = json_error(*known)
            else:
                response = unexpected(request, exc)
        if finish is not None and not response.prepared:
            finish(request, response)
        return response

    return middleware


def client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def unexpected(request: web.Request, exc: Exception) -> web.Response:
    log.error("unexpected error on %s %s", request.method, request.path, exc_info=exc)
    return json_error(500, "internal error")


# On a part's app: its errors are JSON, even those aiohttp answers before any middleware runs.
ANSWERS_IN_JSON = web.AppKey("answers_in_json", bool)


def answers_in_json(request: web.BaseRequest) -> bool:
    """Whether the part that answered ``request`` answers in JSON (its app is marked so)."""
    # A request that wasn't HTTP never reached the router: it has no match info.
    match_info = getattr(request, "_match_info", None)
    return (
        match_info is not None and bool(match_info.apps) and match_info.apps[-1].get(ANSWERS_IN_JSON, False)
    )


def plain_errors_as_json(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """The few errors aiohttp answers before any middleware runs (an ``Expect`` it does not
    know: 417) come in plain text; make them JSON too (``server.stamp`` does this for the
    parts that answer in JSON)."""
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
