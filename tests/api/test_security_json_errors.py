"""Errors aiohttp answers before any middleware runs are JSON too (``plain_errors_as_json``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from synergychat.http_errors import json_errors, on_prepare, plain_errors_as_json
from tests.conftest import expect_json


async def test_an_unknown_expect_is_a_json_417(aiohttp_client: Any) -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": "world"})

    app = web.Application(middlewares=[json_errors()])
    app.router.add_post("/", hello)
    app.on_response_prepare.append(on_prepare(plain_errors_as_json))
    client = await aiohttp_client(app)

    # aiohttp refuses an Expect it does not know before the middlewares see the request.
    body = await expect_json(await client.post("/", data=b"{}", headers={"Expect": "nonsense"}), 417)
    assert body == {"error": "Unknown Expect: nonsense"}
    # The one it knows, and none, go on to the handler; JSON answers are left alone.
    assert await expect_json(await client.post("/", data=b"{}", headers={"Expect": "100-continue"}), 200)
    assert await expect_json(await client.post("/", data=b"{}"), 200) == {"hello": "world"}
    assert await expect_json(await client.get("/nowhere"), 404) == {"error": "Not Found"}
