"""JSON errors for every role: ``{"error": ...}`` with the right status, never an HTML page."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger(__name__)

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
        except Exception as exc:
            known = translate(exc)
            if known is not None:
                log.error("%s %s failed: %s", request.method, request.path, exc)
                return json_error(*known)
            log.exception("unexpected error on %s %s", request.method, request.path)
            return json_error(500, "internal error")

    return middleware
