"""Readiness as every role reports it: 200 or 503, and each dependency's state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

Checks = dict[str, Any]
# A part's readiness: whether it can serve, and what each of its dependencies says.
Readiness = Callable[[], Awaitable[tuple[bool, Checks]]]


def readiness_response(ready: bool, checks: Checks) -> web.Response:
    return web.json_response(
        {"status": "ready" if ready else "not ready", "checks": checks}, status=200 if ready else 503
    )
