"""Cross-site writes: with API_CORS_ORIGINS restricted, a page on another origin changes nothing.

CORS hides answers from a page; it does not stop a browser from sending a form POST
or a ``text/plain`` fetch. So the api itself refuses a write whose Origin it does not
trust, whatever the request's Content-Type.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import FormData

from synergychat.api import create_api_app
from synergychat.settings import ApiSettings
from synergychat.transport import NoCrawlerClient
from tests.conftest import expect_json

TRUSTED = "https://chat.example"
HOSTILE = "http://evil.example"
MESSAGE = {"AuthorUsername": "mallory", "Text": "stored from another site"}


@pytest.fixture
async def restricted_client(aiohttp_client: Any, tmp_path: Any) -> Any:
    settings = ApiSettings(
        api_cors_origins=f"{TRUSTED},http://localhost:8080", api_db_filepath=str(tmp_path / "messages.db")
    )
    return await aiohttp_client(create_api_app(settings, NoCrawlerClient()))


async def stored_texts(client: Any) -> list[str]:
    return [message["Text"] for message in await expect_json(await client.get("/messages"), 200)]


def multipart() -> FormData:
    form = FormData()
    form.add_field("AuthorUsername", "mallory")
    form.add_field("Text", "x")
    return form


# Every body a browser can send without a preflight, and the preflighted JSON one too.
BODIES = {
    "text/plain": (json.dumps(MESSAGE).encode(), {"Content-Type": "text/plain;charset=UTF-8"}),
    "form-urlencoded": (
        b"AuthorUsername=mallory&Text=x",
        {"Content-Type": "application/x-www-form-urlencoded"},
    ),
    "json": (json.dumps(MESSAGE).encode(), {"Content-Type": "application/json"}),
    "no content type": (json.dumps(MESSAGE).encode(), {}),
}


@pytest.mark.parametrize("kind", list(BODIES))
@pytest.mark.parametrize(
    "origin",
    [
        HOSTILE,
        "null",  # a sandboxed frame or a file: page: names no site, so any page can send it
        "https://chat.example.evil.example",  # a prefix of a trusted origin is not that origin
        "https://chat.example:8443",  # another port is another origin
        "http://chat.example",  # and another scheme
    ],
)
async def test_a_disallowed_origin_stores_nothing(restricted_client: Any, kind: str, origin: str) -> None:
    body, headers = BODIES[kind]
    response = await restricted_client.post("/messages", data=body, headers={"Origin": origin, **headers})
    error = (await expect_json(response, 403))["error"]
    assert "API_CORS_ORIGINS" in error
    assert "Access-Control-Allow-Origin" not in response.headers
    assert await stored_texts(restricted_client) == []


async def test_a_multipart_form_from_a_disallowed_origin_stores_nothing(restricted_client: Any) -> None:
    response = await restricted_client.post("/messages", data=multipart(), headers={"Origin": HOSTILE})
    await expect_json(response, 403)
    assert await stored_texts(restricted_client) == []


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_other_writing_methods_are_refused_too(restricted_client: Any, method: str) -> None:
    response = await restricted_client.request(method, "/messages", data=b"{}", headers={"Origin": HOSTILE})
    await expect_json(response, 403)


async def test_a_browser_hiding_the_origin_of_a_cross_site_request_is_refused(restricted_client: Any) -> None:
    headers = {"Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}
    response = await restricted_client.post("/messages", data=json.dumps(MESSAGE), headers=headers)
    await expect_json(response, 403)
    assert await stored_texts(restricted_client) == []


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": TRUSTED},  # the page the operator named
        {"Origin": "http://localhost:8080"},
        {},  # curl, scripts, the doctor: not a browser, no Origin
        # The page served from the api's own origin (behind one host): the browser says so,
        # and no page on another origin can make it say that.
        {"Origin": "https://behind-a-proxy.example", "Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},  # the user's own navigation
    ],
)
async def test_trusted_writers_still_store(restricted_client: Any, headers: dict[str, str]) -> None:
    await expect_json(await restricted_client.post("/messages", json=MESSAGE, headers=headers), 201)
    assert await stored_texts(restricted_client) == [MESSAGE["Text"]]


async def test_reads_from_a_disallowed_origin_get_no_cors_header(restricted_client: Any) -> None:
    # A GET changes nothing; the browser keeps its answer from the page (no ACAO header).
    response = await restricted_client.get("/messages", headers={"Origin": HOSTILE})
    await expect_json(response, 200)
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_the_default_star_keeps_the_originals_behaviour(aiohttp_client: Any) -> None:
    # API_CORS_ORIGINS=* (the default) lets any http(s) page write, as the original does.
    client = await aiohttp_client(create_api_app(ApiSettings(), NoCrawlerClient()))
    response = await client.post(
        "/messages", data=json.dumps(MESSAGE), headers={"Origin": HOSTILE, "Content-Type": "text/plain"}
    )
    await expect_json(response, 201)
    assert response.headers["Access-Control-Allow-Origin"] == HOSTILE
