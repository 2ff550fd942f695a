"""What a screen reader hears: each new message once, politely, with its author; the history
never; the connection state when it changes; errors at once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.support.processes import RunningRole, free_port

from .accessibility import chromium_live_regions, record_speech, spoken, spoken_texts
from .chat import expect_live, expect_sent, message_log, message_text, send
from .conftest import WatchedPage, is_failed_request_log, post_message, quiet_crawler_env

pytestmark = pytest.mark.browser

# Time for a duplicate to show up if there were one: the stream delivers one's own message
# again after the POST answer did.
SETTLE_MS = 1000


def polite(*texts: str) -> list[dict[str, str]]:
    return [{"live": "polite", "text": text} for text in texts]


def settle(page: Page) -> None:
    page.wait_for_timeout(SETTLE_MS)


def test_new_messages_are_announced_once_and_the_history_never(
    start_role: Callable[..., RunningRole], open_page: Callable[..., WatchedPage]
) -> None:
    role = start_role("all", env=quiet_crawler_env())
    api = role.url + "/api"
    # One more than a page, so older messages can be loaded too.
    for number in range(101):
        post_message(api, "carol", f"history {number}")
    watched = open_page(role.url + "/", before_load=record_speech)
    page = watched.page
    expect_live(page)
    expect(message_text(page, "history 100")).to_have_count(1)

    # Chromium agrees on which regions are live: the log itself is silent, the page speaks
    # through one polite region per kind of news.
    regions = chromium_live_regions(page)
    assert "scroller" not in regions
    assert regions["status"]["live"] == "polite" and regions["status"]["atomic"] is True
    assert regions["announcer"]["live"] == "polite" and regions["announcer"]["atomic"] is False

    # The history is on screen, not read out; the connection state is.
    settle(page)
    assert spoken(page) == polite("Live")

    post_message(api, "bob", "the kettle is on")
    expect(message_text(page, "the kettle is on")).to_have_count(1)
    settle(page)
    assert spoken(page) == polite("Live", "bob: the kettle is on")

    # One's own message comes back twice (POST answer, stream) and is said once; the bot's
    # reply says it is the bot's.
    send(page, "ann", "/stats")
    expect_sent(page, "/stats")
    bot_reply = message_log(page).locator(".msg-bot .msg-text")
    expect(bot_reply).to_have_count(1)
    settle(page)
    texts = spoken_texts(page)
    assert texts[:3] == ["Live", "bob: the kettle is on", "ann: /stats"]
    assert texts[3:] == [f"crawler-bot (bot): {bot_reply.inner_text()}"]
    assert all(entry["live"] == "polite" for entry in spoken(page))

    # Older messages are history too. Keyboard: the button goes away once everything is
    # loaded, and focus stays in the log instead of falling back to the page's start.
    older = page.get_by_role("button", name="Load older messages")
    older.focus()
    page.keyboard.press("Enter")
    expect(message_text(page, "history 0")).to_have_count(1)
    expect(older).to_be_hidden()
    expect(page.get_by_role("log", name="Messages")).to_be_focused()
    settle(page)
    assert len(spoken(page)) == 4
    watched.assert_clean()


def test_the_connection_state_is_announced_when_it_changes(
    start_role: Callable[..., RunningRole], open_page: Callable[..., WatchedPage], tmp_path: Path
) -> None:
    env = {**quiet_crawler_env(), "API_DB_FILEPATH": str(tmp_path / "db" / "messages.sqlite3")}
    role = start_role("all", env=env)
    watched = open_page(role.url + "/", before_load=record_speech)
    page = watched.page
    expect_live(page)

    assert role.stop() == 0
    expect(page.get_by_role("status")).to_have_text("Reconnecting…")
    # EventSource keeps failing while the server is away: still said once.
    page.wait_for_timeout(4000)
    assert spoken(page) == polite("Live", "Reconnecting…")

    restarted = start_role("all", env=env, port=role.port)
    # EventSource waits a few seconds between attempts.
    expect(page.get_by_role("status")).to_have_text("Live", timeout=15_000)
    post_message(restarted.url + "/api", "bob", "back")
    expect(message_text(page, "back")).to_have_count(1)
    settle(page)
    assert spoken(page) == polite("Live", "Reconnecting…", "Live", "bob: back")
    watched.assert_clean(allow=lambda text: is_failed_request_log(text) or "ERR_CONNECTION_REFUSED" in text)


def test_errors_and_the_length_limit_are_said(
    start_role: Callable[..., RunningRole], open_page: Callable[..., WatchedPage]
) -> None:
    role = start_role("all", env=quiet_crawler_env())
    watched = open_page(role.url + "/", before_load=record_speech)
    page = watched.page
    expect_live(page)

    # An error is an alert (said at once), tied to the field it is about.
    page.get_by_label("Message", exact=True).fill("who am I?")
    page.get_by_role("button", name="Send", exact=True).click()
    username = page.get_by_label("Username", exact=True)
    expect(username).to_have_attribute("aria-invalid", "true")
    expect(username).to_have_accessible_description("Choose a username first.")
    settle(page)
    assert spoken(page)[-1] == {"live": "assertive", "text": "Choose a username first."}
    username.fill("ann")
    expect(username).not_to_have_attribute("aria-invalid", "true")

    # Near the limit, the count is said once typing pauses, not on every key.
    box = page.get_by_label("Message", exact=True)
    box.fill("x" * 3990)
    box.press("x")
    box.press("x")
    expect(page.locator("#counter")).to_have_text("3,992 / 4,000")
    settle(page)
    assert spoken(page)[-1] == {"live": "polite", "text": "You have 8 characters remaining"}
    assert spoken_texts(page).count("You have 8 characters remaining") == 1
    assert not any("You have 9" in text for text in spoken_texts(page))

    box.fill("x" * 4001)
    box.press("Enter")
    expect(box).to_have_attribute("aria-invalid", "true")
    error = page.locator("#form-error").inner_text()
    assert error.startswith("Text ")
    settle(page)
    assert {"live": "assertive", "text": error} in spoken(page)
    assert {"live": "polite", "text": "You have 1 character too many"} in spoken(page)
    watched.assert_clean(allow=is_failed_request_log)


def test_a_failing_retry_is_not_said_again(
    start_role: Callable[..., RunningRole], open_page: Callable[..., WatchedPage]
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    web = start_role("web", env={"API_URL": nowhere})
    watched = open_page(web.url + "/", before_load=record_speech)
    page = watched.page
    banner = page.locator("#banner")
    expect(banner).to_contain_text("Retrying in 1 s")
    # The page tries again after 1 s, then 2 s: the countdown is drawn, the alert said once.
    expect(banner).to_contain_text("Retrying in 4 s", timeout=8000)
    alerts = [entry for entry in spoken(page) if entry["live"] == "assertive"]
    assert alerts == [
        {"live": "assertive", "text": "Could not load messages: Could not reach the chat server."}
    ]
    assert spoken_texts(page).count("Offline") == 1
    watched.assert_clean(allow=lambda text: is_failed_request_log(text) or "ERR_CONNECTION_REFUSED" in text)
