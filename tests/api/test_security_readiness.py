"""/readyz is public: it says states, never an address; the detail goes to the log, once per change."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from synergychat import readiness
from synergychat.api import create_api_app
from synergychat.readiness import Checks, ReadinessLog, readiness_response
from synergychat.roles import Role, RoleSettings, build_app
from synergychat.settings import ApiSettings, CrawlerSettings, WebSettings
from synergychat.transport import HttpCrawlerClient
from tests.conftest import expect_json
from tests.support.processes import free_port

READINESS_LOGGER = "synergychat.readiness"


def readiness_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == READINESS_LOGGER]


async def test_the_api_names_no_crawler_address_and_logs_it_once(
    aiohttp_client: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, READINESS_LOGGER)
    # A process remembers what it logged; this test is a fresh process in that respect.
    monkeypatch.setattr(readiness, "PROCESS_READINESS_LOG", ReadinessLog())
    crawler_url = f"http://127.0.0.1:{free_port()}"
    client = await aiohttp_client(create_api_app(ApiSettings(), HttpCrawlerClient(crawler_url, 1.0)))
    for _ in range(3):
        response = await client.get("/readyz")
        body = await expect_json(response, 200)
        assert body["checks"]["crawler"] == {"ok": False, "state": "unreachable", "progress": None}
        assert body["checks"]["database"] == {"ok": True, "state": "ok"}
        assert "127.0.0.1" not in await response.text()
    # Three probes, one line per dependency: the address and the error are there for the operator.
    lines = [line for line in readiness_lines(caplog) if "crawler is unreachable" in line]
    assert len(lines) == 1 and crawler_url in lines[0], readiness_lines(caplog)


@pytest.mark.parametrize("path", ["/readyz", "/api/readyz", "/crawler/readyz"])
async def test_all_in_one_names_no_catalogue_address(aiohttp_client: Any, tmp_path: Any, path: str) -> None:
    # The catalogue is a closed port: the crawl keeps retrying with an error naming it.
    catalogue = f"http://127.0.0.1:{free_port()}"
    settings = RoleSettings(
        web=WebSettings(api_url="/api"),
        api=ApiSettings(api_db_filepath=str(tmp_path / "messages.db")),
        crawler=CrawlerSettings(crawler_source_url=catalogue, crawler_delay_seconds=0),
    )
    client = await aiohttp_client(build_app(Role.ALL, settings))
    response = await client.get(path)
    assert response.status in (200, 503)
    text = await response.text()
    assert "127.0.0.1" not in text and "http" not in text, text
    for check in (await response.json())["checks"].values():
        assert set(check) <= {"ok", "state", "location", "progress"}, check


def test_a_failure_is_logged_when_it_starts_and_when_it_ends(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, READINESS_LOGGER)
    changes = ReadinessLog()
    broken: Checks = {
        "database": {"ok": False, "detail": "not writable: disk I/O error at /data/db/messages.db"}
    }
    healthy: Checks = {"database": {"ok": True, "detail": "writable"}}
    for checks in (healthy, broken, broken, broken, healthy, healthy):
        response = readiness_response(checks["database"]["ok"], checks, changes)
        assert isinstance(response.body, bytes)  # a JSON answer's body is its encoded text
        assert b"/data" not in response.body
    assert readiness_lines(caplog) == [
        "readiness: database is ok (writable)",
        "readiness: database is not writable (not writable: disk I/O error at /data/db/messages.db)",
        "readiness: database is ok (writable)",
    ]
    assert [record.levelname for record in caplog.records if record.name == READINESS_LOGGER] == [
        "INFO",
        "WARNING",
        "INFO",
    ]


def test_progress_keeps_counts_and_drops_urls_and_errors() -> None:
    progress = {
        "state": "retrying",
        "books_counted": 3,
        "pages_done": 1,
        "next_page_url": "http://catalogue.internal:8000/books?page=2",
        "source_url": "http://catalogue.internal:8000",
        "last_error": {"at": "now", "message": "Cannot connect to host catalogue.internal:8000"},
        "current_book": {"id": 84, "title": "Frankenstein"},
    }
    checks = {"crawler": {"ok": True, "state": "ok", "location": "http://crawler:8080", "progress": progress}}
    body = readiness_response(True, checks, ReadinessLog()).body
    assert isinstance(body, bytes)
    assert b"internal" not in body and b"crawler:8080" not in body
    assert b'"progress": {"state": "retrying", "books_counted": 3, "pages_done": 1}' in body
