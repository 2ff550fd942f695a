"""GET /readyz: the database decides readiness; the crawler's state is reported, not fatal."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

from aiohttp import web

from synergychat.api import create_api_app
from synergychat.settings import ApiSettings
from synergychat.transport import HttpCrawlerClient, NoCrawlerClient
from tests.conftest import expect_json
from tests.support.processes import free_port


async def test_ready_with_crawler_progress(api_client: Any) -> None:
    body = await expect_json(await api_client.get("/readyz"), 200)
    assert body["status"] == "ready"
    assert body["checks"]["database"]["ok"] is True
    crawler = body["checks"]["crawler"]
    assert crawler["ok"] is True and crawler["state"] == "ok"
    assert crawler["progress"]["books_counted"] == 2


async def test_crawler_not_configured_does_not_fail_readiness(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_api_app(ApiSettings(), NoCrawlerClient()))
    body = await expect_json(await client.get("/readyz"), 200)
    assert body["checks"]["crawler"] == {"progress": None, "ok": False, "state": "not configured"}


async def test_crawler_down_is_reported_without_its_address(aiohttp_client: Any, caplog: Any) -> None:
    # The answer is public: the crawler's address and the error go to the log only.
    url = f"http://127.0.0.1:{free_port()}"
    client = await aiohttp_client(create_api_app(ApiSettings(), HttpCrawlerClient(url, 1.0)))
    response = await client.get("/readyz")
    body = await expect_json(response, 200)
    assert body["checks"]["crawler"] == {"ok": False, "state": "unreachable", "progress": None}
    assert "127.0.0.1" not in await response.text()


async def test_locked_database_is_not_ready(aiohttp_client: Any, api_settings: ApiSettings) -> None:
    client = await aiohttp_client(create_api_app(api_settings, NoCrawlerClient()))
    # Another writer holding the lock is what a stuck or foreign process looks like.
    blocker = sqlite3.connect(api_settings.api_db_filepath, timeout=0)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        body = await expect_json(await client.get("/readyz"), 503)
        assert body["status"] == "not ready"
        assert body["checks"]["database"]["ok"] is False
        # Liveness stays fine: restarting would not help.
        await expect_json(await client.get("/healthz"), 200)
    finally:
        blocker.rollback()
        blocker.close()
    body = await expect_json(await client.get("/readyz"), 200)
    assert body["status"] == "ready"


async def test_a_hanging_crawler_does_not_hold_up_readiness(aiohttp_client: Any, aiohttp_server: Any) -> None:
    # Kubernetes probes time out after 1 s by default; a slow crawler must not fail the api.
    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/healthz", hang)
    server = await aiohttp_server(app)
    client = await aiohttp_client(
        create_api_app(ApiSettings(), HttpCrawlerClient(str(server.make_url("/")), 5.0))
    )
    started = time.monotonic()
    body = await expect_json(await client.get("/readyz"), 200)
    assert time.monotonic() - started < 0.9
    assert body["checks"]["crawler"]["state"] == "unreachable"
