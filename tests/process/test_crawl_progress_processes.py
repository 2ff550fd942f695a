"""``GET /crawl/progress`` as users run it: real processes, split (api → crawler over HTTP) and ``all``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.crawler.conftest import closed_port_url
from tests.process.test_crawler_processes import crawler_env, fake_gutendex_thread, http_json, wait_for_status
from tests.support.processes import running_role

pytestmark = pytest.mark.process

# The sample catalogue: 8 books (one without a plain text, skipped).
BOOKS = 8


def test_split_roles_report_progress_and_503_without_a_crawler(tmp_path: Path) -> None:
    with fake_gutendex_thread() as gutendex:
        env = crawler_env(gutendex, tmp_path / "crawler-data")
        with running_role("crawler", tmp_path, env) as crawler:
            wait_for_status(f"{crawler.url}/status", lambda s: s["state"] == "waiting")
            with running_role("api", tmp_path, {"CRAWLER_BASE_URL": crawler.url}) as api:
                status_code, body = http_json("GET", f"{api.url}/crawl/progress")
                assert status_code == 200, body
                assert {key: body[key] for key in ("state", "books_done", "books_total", "percent")} == {
                    "state": "waiting",
                    "books_done": BOOKS,
                    "books_total": BOOKS,
                    "percent": 100.0,
                }
                assert body["eta_seconds"] is None and set(body) == {
                    "state",
                    "books_done",
                    "books_total",
                    "percent",
                    "books_per_minute",
                    "eta_seconds",
                }

    # A crawler that is down, and none configured: 503 with a JSON error.
    with running_role("api", tmp_path, {"CRAWLER_BASE_URL": closed_port_url("")}) as api:
        status_code, body = http_json("GET", f"{api.url}/crawl/progress")
        assert (status_code, body) == (503, {"error": "the crawler is not answering right now"})
    with running_role("api", tmp_path, {}) as api:
        status_code, body = http_json("GET", f"{api.url}/crawl/progress")
        assert (status_code, body) == (503, {"error": "no crawler is configured for this chat"})


def test_role_all_reports_progress_in_process(tmp_path: Path) -> None:
    with fake_gutendex_thread() as gutendex:
        env = crawler_env(gutendex, tmp_path / "crawler-data")
        with running_role("all", tmp_path, env, wait_path="/api/healthz") as app:
            wait_for_status(f"{app.url}/crawler/status", lambda s: s["state"] == "waiting")
            status_code, body = http_json("GET", f"{app.url}/api/crawl/progress")
            assert status_code == 200, body
            assert (body["state"], body["books_done"], body["books_total"]) == ("waiting", BOOKS, BOOKS)
