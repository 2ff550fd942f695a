"""The web role: the page with API_URL as data, static files, security headers."""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any

import pytest

from synergychat.roles import Role, RoleSettings, build_app
from synergychat.settings import ApiSettings, CrawlerSettings, WebSettings
from synergychat.web import create_web_app

CONFIG = re.compile(r'<script id="synergychat-config" type="application/json">(.*?)</script>', re.DOTALL)


async def page_config(client: Any, path: str = "/") -> tuple[dict[str, Any], Any]:
    response = await client.get(path)
    assert response.status == 200
    assert response.content_type == "text/html"
    match = CONFIG.search(await response.text())
    assert match, "the page must carry its config as JSON data"
    return json.loads(match.group(1)), response


@pytest.mark.parametrize(
    "api_url", ["", "/api", "/api/", "http://localhost:8081", "http://synchatapi.internal/"]
)
async def test_api_url_reaches_the_page_as_data(aiohttp_client: Any, api_url: str) -> None:
    client = await aiohttp_client(create_web_app(WebSettings(api_url=api_url)))
    config, _ = await page_config(client)
    assert config == {"apiUrl": api_url}


async def test_hostile_api_url_cannot_break_out_of_the_data(aiohttp_client: Any) -> None:
    # Settings refuse such an API_URL; the page must be safe even if one got through.
    api_url = '</script><script>alert(1)</script>"&'
    client = await aiohttp_client(create_web_app(WebSettings.model_construct(api_url=api_url)))
    html = await (await client.get("/")).text()
    assert "<script>alert(1)" not in html
    config, _ = await page_config(client)
    assert config["apiUrl"] == api_url


async def test_headers_on_the_page(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_web_app(WebSettings(api_url="/api")))
    _, response = await page_config(client)
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "connect-src 'self';" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize(
    "api_url, origin",
    [
        ("http://localhost:8081", "http://localhost:8081"),
        ("https://api.example/v1/", "https://api.example"),
        # scheme-relative: the page's scheme, so a host-source
        ("//api.example:8443/chat", "api.example:8443"),
    ],
)
async def test_csp_allows_an_absolute_api_origin(aiohttp_client: Any, api_url: str, origin: str) -> None:
    client = await aiohttp_client(create_web_app(WebSettings(api_url=api_url)))
    response = await client.get("/")
    assert f"connect-src 'self' {origin};" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    "name, content_type",
    [("app.js", "javascript"), ("style.css", "text/css"), ("favicon.svg", "image/svg+xml")],
)
async def test_static_files(aiohttp_client: Any, name: str, content_type: str) -> None:
    client = await aiohttp_client(create_web_app(WebSettings()))
    response = await client.get(f"/{name}")
    assert response.status == 200
    assert content_type in response.headers["Content-Type"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize(
    "path",
    [
        "/nope.js",
        "/index.html",  # only served rendered, at /
        "/../settings.py",
        "/..%2Fsettings.py",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/static/../../pyproject.toml",
    ],
)
async def test_no_path_escapes_the_static_folder(aiohttp_client: Any, path: str) -> None:
    client = await aiohttp_client(create_web_app(WebSettings()))
    response = await client.get(path, allow_redirects=False)
    assert response.status == 404, path


async def test_health_endpoints(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_web_app(WebSettings()))
    assert await (await client.get("/healthz")).json() == {"status": "ok"}
    assert await (await client.get("/readyz")).json() == {
        "status": "ready",
        "checks": {"web": {"ok": True, "state": "ok"}},
    }


async def test_all_serves_page_api_and_crawler_on_one_port(aiohttp_client: Any, tmp_path: Any) -> None:
    settings = RoleSettings(
        web=WebSettings(api_url="/api"),
        api=ApiSettings(api_db_filepath=str(tmp_path / "m.db")),
        crawler=CrawlerSettings(crawler_source_url="http://127.0.0.1:9", crawler_delay_seconds=0),
    )
    client = await aiohttp_client(build_app(Role.ALL, settings))
    config, _ = await page_config(client)
    assert config == {"apiUrl": "/api"}
    # The api under /api/ has exactly the standalone api's routes.
    for path in ("/api/healthz", "/api/readyz", "/api/messages", "/api/"):
        assert (await client.get(path)).status == 200, path
    posted = await client.post("/api/messages", json={"AuthorUsername": "ann", "Text": "/stats"})
    assert posted.status == 201
    page = await posted.json()
    assert page[-1]["AuthorUsername"] == "crawler-bot"
    assert page[-1]["Text"].startswith("Beep boop!")
    assert (await client.get("/crawler/healthz")).status == 200


async def test_all_readiness_is_the_whole_process(aiohttp_client: Any, tmp_path: Any) -> None:
    # One pod, one probe: /readyz under `all` must fail when the chat's database does.
    db = tmp_path / "m.db"
    settings = RoleSettings(
        web=WebSettings(api_url="/api"),
        api=ApiSettings(api_db_filepath=str(db)),
        crawler=CrawlerSettings(crawler_source_url="http://127.0.0.1:9", crawler_delay_seconds=0),
    )
    client = await aiohttp_client(build_app(Role.ALL, settings))
    body = await (await client.get("/readyz")).json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"web", "database", "crawler"}
    assert body["checks"]["crawler"]["location"] == "in-process"
    blocker = sqlite3.connect(db, timeout=0)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        response = await client.get("/readyz")
        assert response.status == 503
        assert (await response.json())["checks"]["database"]["ok"] is False
    finally:
        blocker.rollback()
        blocker.close()
