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


def json_errors(translate: Translate = _unknown) -> Callable[..., Awaitable[web.StreamResponse]]:
    """A middleware turning every error into JSON; ``translate`` names a role's own failures."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ClientError as exc:
            return json_error(exc.status, exc.message)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            headers = {name: value for name, value in exc.headers.items() if name.lower() == "allow"}
            return json_error(exc.status, exc.reason, headers)
        except HttpProcessingError as exc:
            # aiohttp's parser refused the body as it arrived (a broken chunk, a body cut
            # short by a half-closed connection): the request is malformed.
            log.info("%s %s: malformed request body: %s", request.method, request.path, exc.message)
            return json_error(400, f"malformed request body: {exc.message}")
        except ConnectionResetError as exc:
            # aiohttp raises this (ClientConnectionResetError too) when the client closes
            # its connection while we read the body or write the answer.
            if not client_gone(request):
                return unexpected(request, exc)
            log.info("%s %s: the client closed the connection first (%s)", request.method, request.path, exc)
            return web.Response(status=CLIENT_CLOSED_REQUEST)
        except Exception as exc:  # noqa: BLE001 - the app's last guard: any failure becomes a JSON 500
            known = translate(exc)
            if known is not None:
                log.error("%s %s failed: %s", request.method, request.path, exc)
                return json_error(*known)
            return unexpected(request, exc)

    return middleware


def client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def unexpected(request: web.Request, exc: Exception) -> web.Response:
    log.error("unexpected error on %s %s", request.method, request.path, exc_info=exc)
    return json_error(500, "internal error")


# Something to do to every response as it is prepared (headers), in the order given.
ResponseHook = Callable[[web.Request, web.StreamResponse], None]


def on_prepare(*hooks: ResponseHook) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """One ``on_response_prepare`` receiver running ``hooks`` in order: aiohttp awaits each
    receiver of every response apart, so a role's hooks go in one."""

    async def prepare(request: web.Request, response: web.StreamResponse) -> None:
        for hook in hooks:
            hook(request, response)

    return prepare


def plain_errors_as_json(request: web.Request, response: web.StreamResponse) -> None:
    """A response hook (``on_prepare``): the few errors aiohttp answers before any middleware
    runs (an ``Expect`` it does not know: 417) come in plain text; make them JSON too."""
    if response.status < 400 or not isinstance(response, web.Response):
        return
    if response.content_type == "application/json" or not isinstance(response.body, bytes):
        return  # already JSON, or a payload object (a file): not an error page of aiohttp's
    text = response.body.decode("utf-8", "replace").strip() or response.reason
    response.content_type = "application/json"
    response.charset = "utf-8"
    body = json.dumps({"error": text})
    response.text = body
    # This hook runs after aiohttp counted the plain body's length.
    response.headers["Content-Length"] = str(len(body.encode("utf-8")))
