"""The page on a ``--role web`` process talking to a separate ``--role api`` process.

The api is another origin (another port), so these exercise CORS on the api, the
page's CSP connect-src, and an EventSource across origins.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.support.processes import RunningRole

from .chat import LIVE_DELIVERY_MS, expect_live, expect_sent, message_text, message_texts, send
from .conftest import WatchedPage, is_failed_request_log, post_message

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("suffix", ["", "/"], ids=["no-trailing-slash", "trailing-slash"])
def test_chat_across_origins(
    suffix: str, start_role: Callable[..., RunningRole], open_page: Callable[..., WatchedPage]
) -> None:
    api = start_role("api")
    web = start_role("web", env={"API_URL": api.url + suffix})
    ann = open_page(web.url + "/")
    bob = open_page(web.url + "/")
    expect_live(ann.page)
    expect_live(bob.page)

    send(ann.page, "ann", "hello across origins")
    expect_sent(ann.page, "hello across origins")
    expect(message_text(bob.page, "hello across origins")).to_have_count(1, timeout=LIVE_DELIVERY_MS)
    # Someone using the api directly shows up too.
    post_message(api.url, "carol", "hi from curl")
    expect(message_text(ann.page, "hi from curl")).to_have_count(1, timeout=LIVE_DELIVERY_MS)
    assert message_texts(bob.page) == ["hello across origins", "hi from curl"]
    # This api has no crawler: its /crawl/progress answers 503, read across origins too.
    expect(ann.page.locator("#crawl-text")).to_have_text(
        "Crawler: unavailable (no crawler is configured for this chat)"
    )

    # Chromium logs that 503; nothing else may be logged.
    ann.assert_clean(allow=is_failed_request_log)
    bob.assert_clean(allow=is_failed_request_log)


def test_the_stream_recovers_after_the_api_restarts(
    start_role: Callable[..., RunningRole], open_page: Callable[..., WatchedPage], tmp_path: Path
) -> None:
    database = {"API_DB_FILEPATH": str(tmp_path / "db" / "messages.sqlite3")}
    api = start_role("api", env=database)
    web = start_role("web", env={"API_URL": api.url})
    watched = open_page(web.url + "/")
    page = watched.page
    expect_live(page)
    post_message(api.url, "carol", "before the restart")
    expect(message_text(page, "before the restart")).to_have_count(1, timeout=LIVE_DELIVERY_MS)

    assert api.stop() == 0
    expect(page.get_by_role("status")).to_have_text("Reconnecting…")

    # Same port, same database: the page reconnects by itself and gets what it missed.
    restarted = start_role("api", env=database, port=api.port)
    post_message(restarted.url, "carol", "after the restart")
    # EventSource waits a few seconds between attempts.
    expect(message_text(page, "after the restart")).to_have_count(1, timeout=15_000)
    expect_live(page)
    assert message_texts(page) == ["before the restart", "after the restart"]

    # Sending works again too.
    send(page, "ann", "back online")
    expect_sent(page, "back online")
    # Chromium logs the refused connections while the api was down.
    watched.assert_clean(allow=lambda text: is_failed_request_log(text) or "ERR_CONNECTION_REFUSED" in text)


def test_an_api_restarted_on_an_empty_database_replaces_the_page_history(
    start_role: Callable[..., RunningRole], open_page: Callable[..., WatchedPage]
) -> None:
    # The api role's default is an in-memory database: a restart starts ids again at 1,
    # and the page must not keep (or dedupe against) the old history.
    api = start_role("api")
    web = start_role("web", env={"API_URL": api.url})
    watched = open_page(web.url + "/")
    page = watched.page
    expect_live(page)
    for n in range(3):
        post_message(api.url, "carol", f"old history {n}")
    expect(message_text(page, "old history 2")).to_have_count(1, timeout=LIVE_DELIVERY_MS)

    assert api.stop() == 0
    restarted = start_role("api", port=api.port)
    # More messages than the page had: ids alone can't tell the histories apart.
    for n in range(1, 6):
        post_message(restarted.url, "dave", f"new history {n}")
    expect(message_text(page, "new history 5")).to_have_count(1, timeout=15_000)
    expect_live(page)
    assert message_texts(page) == [f"new history {n}" for n in range(1, 6)]
    post_message(restarted.url, "dave", "new history 6")
    expect(message_text(page, "new history 6")).to_have_count(1, timeout=LIVE_DELIVERY_MS)
    watched.assert_clean(allow=lambda text: is_failed_request_log(text) or "ERR_CONNECTION_REFUSED" in text)
