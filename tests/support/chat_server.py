"""Apps under test served as the roles serve them: aiohttp's test server with the server of
``synergychat.server`` (``ChatAppRunner``) in place of aiohttp's plain one, so every in-process
test goes through what production runs for each request (errors in JSON, CORS headers,
request ids, the access logger)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from synergychat.server import ChatAppRunner

MAX_CONNECTIONS = 1024
SHUTDOWN_TIMEOUT_SECONDS = 5.0


class ChatTestServer(TestServer):
    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        return ChatAppRunner(
            self.app, max_connections=MAX_CONNECTIONS, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS, **kwargs
        )
