"""CORS as the original: any http(s) origin by default, configurable with API_CORS_ORIGINS."""

from __future__ import annotations

from typing import Any

import pytest

from synergychat.api import create_api_app
from synergychat.settings import ApiSettings
from synergychat.transport import NoCrawlerClient


def preflight_headers(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }


@pytest.mark.parametrize(
    "origin", ["http://localhost:8080", "https://synergychat.example", "http://10.0.0.5:3000"]
)
async def test_default_allows_any_http_origin(api_client: Any, origin: str) -> None:
    response = await api_client.options("/messages", headers=preflight_headers(origin))
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == origin
    assert response.headers["Access-Control-Allow-Methods"] == "GET, POST, PUT, DELETE, OPTIONS"
    assert response.headers["Access-Control-Allow-Headers"] == "content-type"
    assert response.headers["Access-Control-Max-Age"] == "300"
    real = await api_client.get("/messages", headers={"Origin": origin})
    assert real.headers["Access-Control-Allow-Origin"] == origin
    assert "Origin" in real.headers.getall("Vary")


@pytest.mark.parametrize("origin", ["null", "file://", "chrome-extension://abc"])
async def test_default_refuses_non_http_origins(api_client: Any, origin: str) -> None:
    response = await api_client.options("/messages", headers=preflight_headers(origin))
    assert response.status == 403
    assert "API_CORS_ORIGINS" in (await response.json())["error"]
    real = await api_client.get("/messages", headers={"Origin": origin})
    assert "Access-Control-Allow-Origin" not in real.headers


async def test_configured_origins_only(aiohttp_client: Any) -> None:
    settings = ApiSettings(api_cors_origins="https://chat.example, http://localhost:8080/")
    client = await aiohttp_client(create_api_app(settings, NoCrawlerClient()))
    allowed = await client.options("/messages", headers=preflight_headers("http://localhost:8080"))
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://localhost:8080"
    refused = await client.options("/messages", headers=preflight_headers("http://evil.example"))
    assert refused.status == 403
    post = await client.post(
        "/messages", json={"AuthorUsername": "a", "Text": "b"}, headers={"Origin": "http://evil.example"}
    )
    # Refused outright, not merely unreadable (test_security_cross_site.py has the variants).
    assert post.status == 403
    assert "Access-Control-Allow-Origin" not in post.headers


async def test_errors_carry_cors_headers_so_the_page_can_show_them(api_client: Any) -> None:
    response = await api_client.post("/messages", data=b"{", headers={"Origin": "http://page.example"})
    assert response.status == 400
    assert response.headers["Access-Control-Allow-Origin"] == "http://page.example"


async def test_stream_carries_cors_headers(api_client: Any) -> None:
    # Headers of a streamed response leave before the handler returns.
    async with api_client.get("/messages/stream", headers={"Origin": "http://page.example"}) as response:
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == "http://page.example"
