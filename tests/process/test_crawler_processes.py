"""The crawler as users run it: real processes reading a fake catalogue, asked through the chat.

crawler → api over HTTP (CRAWLER_BASE_URL), a crawler restart that resumes without
recounting, and ``--role all`` where the api asks the crawler in-process.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.crawler.conftest import SAMPLE_COUNTS, SAMPLE_TEXT_FILES, sample_books
from tests.crawler.fake_gutendex import FakeGutendex
from tests.support.processes import REPO, free_port, role_env, running_role

pytestmark = pytest.mark.process

LOVE = sum(count for (keyword, _), count in SAMPLE_COUNTS.items() if keyword == "love")
LOVE_IN_FRANKENSTEIN = SAMPLE_COUNTS[("love", "Frankenstein; Or, The Modern Prometheus")]


@contextmanager
def fake_gutendex_thread() -> Iterator[FakeGutendex]:
    """The fake catalogue on 127.0.0.1, on its own event loop in a thread (the test blocks on processes)."""
    port = free_port()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    def serve() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        fake = FakeGutendex(sample_books(), page_size=3)
        fake.base_url = f"http://127.0.0.1:{port}"
        fake.loop = loop
        runner = web.AppRunner(fake.app())
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        stop = asyncio.Event()
        holder.update(fake=fake, loop=loop, stop=stop)
        ready.set()
        loop.run_until_complete(stop.wait())
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, name="fake-gutendex", daemon=True)
    thread.start()
    assert ready.wait(10), "the fake catalogue did not start"
    try:
        yield holder["fake"]
    finally:
        holder["loop"].call_soon_threadsafe(holder["stop"].set)
        thread.join(10)


def http_json(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_for_status(
    url: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    status: dict[str, Any]  # /status answers a JSON object
    while True:
        status_code, status = http_json("GET", url)
        if status_code == 200 and predicate(status):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} never matched: {status}")
        time.sleep(0.1)


def ask_stats(messages_url: str, text: str) -> dict[str, Any]:
    status_code, messages = http_json("POST", messages_url, {"AuthorUsername": "x", "Text": text})
    assert status_code == 201, messages
    reply: dict[str, Any] = messages[-1]
    assert reply["AuthorUsername"] == "crawler-bot"
    return reply


def crawler_env(gutendex: FakeGutendex, db: Path) -> dict[str, str]:
    return {
        "CRAWLER_SOURCE_URL": gutendex.base_url,
        "CRAWLER_DELAY_SECONDS": "0",
        "CRAWLER_DB_PATH": str(db),
        "CRAWLER_KEYWORDS": "love,hate",
    }


def test_crawler_then_api_over_http_and_a_restart_that_resumes(tmp_path: Path) -> None:
    with fake_gutendex_thread() as gutendex:
        env = crawler_env(gutendex, tmp_path / "crawler-data")
        with running_role("crawler", tmp_path, env) as crawler:
            status = wait_for_status(f"{crawler.url}/status", lambda s: s["state"] == "waiting")
            assert (status["books_counted"], status["pages_done"]) == (7, 3)
            status_code, ready = http_json("GET", f"{crawler.url}/readyz")
            assert status_code == 200, ready

            api_env = {
                "CRAWLER_BASE_URL": crawler.url,
                "API_DB_FILEPATH": str(tmp_path / "api" / "messages.db"),
            }
            with running_role("api", tmp_path, api_env) as api:
                reply = ask_stats(f"{api.url}/messages", "/stats keywords=love")
                assert reply["Text"].startswith(f"Beep boop! I have found {LOVE} matches")
                # The crawler's internal address never leaks into the chat (the original's did).
                assert crawler.url not in reply["Text"]
                reply = ask_stats(f"{api.url}/messages", "/stats keywords=love title=frankenstein")
                assert reply["Text"].startswith(f"Beep boop! I have found {LOVE_IN_FRANKENSTEIN} matches")
            # SIGTERM: the crawl task is cancelled and the store closed cleanly.
            assert crawler.stop() == 0, crawler.log()

        # A restart on the same folder: nothing read again, the same answers.
        with running_role("crawler", tmp_path, env) as crawler:
            status = wait_for_status(f"{crawler.url}/status", lambda s: s["state"] == "waiting")
            assert (status["books_counted"], status["pass"]) == (7, 1)
            status_code, counts = http_json("GET", f"{crawler.url}/stats?keywords=love")
            assert sum(row["Count"] for row in counts) == LOVE
        assert gutendex.served == {name: 1 for name in SAMPLE_TEXT_FILES}
        assert gutendex.requests["/books/"] == 1


def test_role_all_answers_stats_in_process(tmp_path: Path) -> None:
    with fake_gutendex_thread() as gutendex:
        env = {
            **crawler_env(gutendex, tmp_path / "crawler-data"),
            "API_DB_FILEPATH": str(tmp_path / "messages.db"),
        }
        with running_role("all", tmp_path, env, wait_path="/api/healthz") as app:
            wait_for_status(f"{app.url}/crawler/status", lambda s: s["state"] == "waiting")
            reply = ask_stats(f"{app.url}/api/messages", "/stats keywords=love")
            assert reply["Text"].startswith(f"Beep boop! I have found {LOVE} matches")
            reply = ask_stats(f"{app.url}/api/messages", "/stats")
            assert reply["Text"].startswith(f"Beep boop! I have found {sum(SAMPLE_COUNTS.values())} matches")
            status_code, ready = http_json("GET", f"{app.url}/crawler/readyz")
            assert status_code == 200, ready
            assert app.stop() == 0, app.log()


def test_a_count_folder_that_cannot_be_opened_stops_the_crawler_with_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = {
        "CRAWLER_PORT": str(free_port()),
        "CRAWLER_DB_PATH": str(blocker),
        # Never reached: the crawler stops before its first request.
        "CRAWLER_SOURCE_URL": "http://127.0.0.1:9",
    }
    result = subprocess.run(
        [sys.executable, "-m", "synergychat", "--role", "crawler"],
        cwd=REPO,
        env=role_env(env),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,  # the exit status is checked below
    )
    assert result.returncode == 1, result.stderr
    assert "synergychat: CRAWLER_DB_PATH=" in result.stderr and "Traceback" not in result.stderr
