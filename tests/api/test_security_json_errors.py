"""Errors aiohttp answers itself, before any handler, are JSON too, for the parts that answer
in JSON (``server.stamp``); every answer of the server is stamped, errors included."""

from __future__ import annotations

from aiohttp import web
from pytest_aiohttp import AiohttpClient

from synergychat.http_errors import JSON_ANSWERS, JsonAnswers
from synergychat.server import SERVER_NAME
from tests.conftest import expect_json


def hello_app(answers_in_json: bool) -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": "world"})

    app = web.Application()
    if answers_in_json:
        app[JSON_ANSWERS] = JsonAnswers()
    app.router.add_post("/", hello)
    return app


async def test_an_unknown_expect_is_a_json_417(aiohttp_client: AiohttpClient) -> None:
    # aiohttp_client serves it as the roles do (tests/conftest.py).
    client = await aiohttp_client(hello_app(answers_in_json=True))
    # aiohttp refuses an Expect it does not know before any handler sees the request.
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


async def test_a_part_that_answers_in_plain_text_keeps_its_errors_but_is_stamped(
    aiohttp_client: AiohttpClient,
) -> None:
    # The web part: a browser that mistypes a path gets aiohttp's own text page.
    client = await aiohttp_client(hello_app(answers_in_json=False))
    answer = await client.get("/nowhere", headers={"X-Request-ID": "lost-1"})
    assert answer.status == 404
    assert answer.content_type == "text/plain"
    assert await answer.text() == "404: Not Found"
    assert answer.headers["Server"] == SERVER_NAME
    assert answer.headers["X-Request-ID"] == "lost-1"
    answer = await client.post("/", data=b"{}", headers={"Expect": "nonsense"})
    assert answer.status == 417
    assert answer.content_type == "text/plain"
