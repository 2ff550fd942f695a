"""Errors aiohttp answers before any middleware runs are JSON too, for the parts that answer
in JSON (``server.stamp``); every answer of the server is stamped, errors included."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from synergychat.http_errors import JSON_ANSWERS, JsonAnswers
from synergychat.server import SERVER_NAME, ChatAppRunner
from tests.conftest import expect_json

Serve = Callable[[web.Application], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Serve an app as the roles do (``server.ChatAppRunner``), on a free port: its base URL."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner = ChatAppRunner(app, max_connections=64, shutdown_timeout=1)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


def hello_app(answers_in_json: bool) -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": "world"})

    app = web.Application()
    if answers_in_json:
        app[JSON_ANSWERS] = JsonAnswers()
    app.router.add_post("/", hello)
    return app


async def test_an_unknown_expect_is_a_json_417(serve: Serve) -> None:
    base = await serve(hello_app(answers_in_json=True))
    async with aiohttp.ClientSession(base) as client:
        # aiohttp refuses an Expect it does not know before the middlewares see the request.
        answer = await client.post("/", data=b"{}", headers={"Expect": "nonsense"})
        assert await expect_json(answer, 417) == {"error": "Unknown Expect: nonsense"}
        assert answer.headers["Server"] == SERVER_NAME
        assert answer.headers["X-Request-ID"]
        # The one it knows, and none, go on to the handler; JSON answers are left alone.
        assert await expect_json(await client.post("/", data=b"{}", headers={"Expect": "100-continue"}), 200)
        answer = await client.post("/", data=b"{}", headers={"X-Request-ID": "abc-123"})
        assert await expect_json(answer, 200) == {"hello": "world"}
        assert answer.headers["X-Request-ID"] == "abc-123"
        assert await expect_json(await client.get("/nowhere"), 404) == {"error": "Not Found"}


async def test_a_part_that_answers_in_plain_text_keeps_its_errors_but_is_stamped(serve: Serve) -> None:
    # The web part: a browser that mistypes a path gets aiohttp's own text page.
    base = await serve(hello_app(answers_in_json=False))
    async with aiohttp.ClientSession(base) as client:
        answer = await client.get("/nowhere", headers={"X-Request-ID": "lost-1"})
        assert answer.status == 404
        assert answer.content_type == "text/plain"
        assert await answer.text() == "404: Not Found"
        assert answer.headers["Server"] == SERVER_NAME
        assert answer.headers["X-Request-ID"] == "lost-1"
        answer = await client.post("/", data=b"{}", headers={"Expect": "nonsense"})
        assert answer.status == 417
        assert answer.content_type == "text/plain"
