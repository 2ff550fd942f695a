"""The page against one ``--role all`` process: page and api share an origin (API_URL=/api)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, Route, expect

from tests.support.processes import RunningRole, free_port

from .chat import (
    LIVE_DELIVERY_MS,
    at_bottom,
    expect_live,
    expect_sent,
    message_log,
    message_text,
    message_texts,
    scroll_state,
    send,
)
from .conftest import WatchedPage, is_failed_request_log, post_message, quiet_crawler_env

pytestmark = pytest.mark.browser

# The page polls this often while its stream is not open.
FALLBACK_POLL_MS = 5000
HOSTILE = '<img src=x onerror="window.__pwned=1">'


@pytest.fixture
def all_role(start_role: Callable[..., RunningRole]) -> RunningRole:
    return start_role("all", env=quiet_crawler_env())


def test_two_pages_chat_live_and_safely(all_role: RunningRole, open_page: Callable[..., WatchedPage]) -> None:
    ann = open_page(all_role.url + "/")
    bob = open_page(all_role.url + "/")
    expect_live(ann.page)
    expect_live(bob.page)

    send(ann.page, "ann", "hello bob, are you there?")
    expect_sent(ann.page, "hello bob, are you there?")
    # Bob never reloads: the message arrives over the push channel.
    expect(message_text(bob.page, "hello bob, are you there?")).to_have_count(1, timeout=LIVE_DELIVERY_MS)

    send(bob.page, "bob", "yes, hi ann")
    expect_sent(bob.page, "yes, hi ann")
    expect(message_text(ann.page, "yes, hi ann")).to_have_count(1, timeout=LIVE_DELIVERY_MS)

    # Markup in a message is text on every page, and its handler never runs.
    send(ann.page, "ann", HOSTILE)
    expect_sent(ann.page, HOSTILE)
    for watched in (ann, bob):
        expect(message_log(watched.page).get_by_text(HOSTILE, exact=True)).to_be_visible(
            timeout=LIVE_DELIVERY_MS
        )
        expect(message_log(watched.page).locator("img")).to_have_count(0)
        assert watched.page.evaluate("typeof window.__pwned") == "undefined"

    # Both the POST answer and the stream carry one's own message: shown once, in order.
    expected = ["hello bob, are you there?", "yes, hi ann", HOSTILE]
    assert message_texts(ann.page) == expected
    assert message_texts(bob.page) == expected
    authors = message_log(bob.page).locator(".msg-author").all_text_contents()
    assert authors == ["ann", "bob", "ann"]

    ann.page.reload()
    expect(ann.page.get_by_label("Username", exact=True)).to_have_value("ann")
    expect_live(ann.page)
    assert message_texts(ann.page) == expected

    ann.assert_clean()
    bob.assert_clean()


def test_shift_enter_is_a_new_line_and_enter_sends(
    all_role: RunningRole, open_page: Callable[..., WatchedPage]
) -> None:
    watched = open_page(all_role.url + "/")
    page = watched.page
    expect_live(page)
    page.get_by_label("Username", exact=True).fill("ann")
    box = page.get_by_label("Message", exact=True)
    box.click()
    box.press_sequentially("first line")
    box.press("Shift+Enter")
    box.press_sequentially("second line")
    expect(box).to_have_value("first line\nsecond line")
    box.press("Enter")
    expect_sent(page, "first line")
    assert message_texts(page) == ["first line\nsecond line"]
    watched.assert_clean()


def test_stats_help_and_a_distinct_bot_reply(
    all_role: RunningRole, open_page: Callable[..., WatchedPage]
) -> None:
    watched = open_page(all_role.url + "/")
    page = watched.page
    expect_live(page)
    for example in (
        "/stats",
        "/stats keywords=love,hate",
        "/stats title=Frankenstein",
        '/stats keywords=love title="Jekyll and Hyde"',
    ):
        expect(page.get_by_role("button", name=example, exact=True)).to_be_visible()

    # Clicking an example puts it in the message box, ready to send.
    page.get_by_role("button", name="/stats keywords=love,hate", exact=True).click()
    expect(page.get_by_label("Message", exact=True)).to_have_value("/stats keywords=love,hate")
    expect(page.get_by_label("Message", exact=True)).to_be_focused()
    page.get_by_label("Username", exact=True).fill("ann")
    page.get_by_role("button", name="Send", exact=True).click()

    bot_reply = message_log(page).locator(".msg-bot")
    expect(bot_reply).to_have_count(1)
    expect(bot_reply.locator(".msg-author")).to_have_text("crawler-bot")
    expect(bot_reply.locator(".msg-text")).to_contain_text("Beep boop!")
    # Distinct at a glance: the bot's text sits on a different background than a user's.
    user_background = (
        message_log(page)
        .locator(".msg:not(.msg-bot) .msg-text")
        .first.evaluate("e => getComputedStyle(e).backgroundColor")
    )
    bot_background = bot_reply.locator(".msg-text").evaluate("e => getComputedStyle(e).backgroundColor")
    assert bot_background != user_background
    watched.assert_clean()


def test_an_api_error_shows_inline_and_keeps_the_text(
    all_role: RunningRole, open_page: Callable[..., WatchedPage]
) -> None:
    watched = open_page(all_role.url + "/")
    page = watched.page
    expect_live(page)
    too_long = "x" * 4001
    api_error = post_message(all_role.url + "/api", "ann", too_long, expected_status=400)["error"]

    send(page, "ann", too_long)
    form_error = page.locator("#composer").get_by_role("alert")
    expect(form_error).to_have_text(api_error)
    expect(page.get_by_label("Message", exact=True)).to_have_value(too_long)
    expect(message_log(page).locator(".msg")).to_have_count(0)

    # Fixing the text and sending again clears the error.
    page.get_by_label("Message", exact=True).fill("short enough")
    page.get_by_label("Message", exact=True).press("Enter")
    expect_sent(page, "short enough")
    expect(form_error).to_be_hidden()
    # The 400 itself is logged by Chromium; nothing else may be.
    watched.assert_clean(allow=is_failed_request_log)


def test_a_username_is_required(all_role: RunningRole, open_page: Callable[..., WatchedPage]) -> None:
    watched = open_page(all_role.url + "/")
    page = watched.page
    expect_live(page)
    page.get_by_label("Message", exact=True).fill("who am I?")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.locator("#composer").get_by_role("alert")).to_have_text("Choose a username first.")
    expect(page.get_by_label("Username", exact=True)).to_be_focused()
    watched.assert_clean()


def test_follows_new_messages_unless_scrolled_up(
    all_role: RunningRole, open_page: Callable[..., WatchedPage]
) -> None:
    api = all_role.url + "/api"
    for number in range(40):
        post_message(api, "bob", f"backlog message {number}")
    watched = open_page(all_role.url + "/")
    page = watched.page
    expect_live(page)
    expect(message_log(page).locator(".msg")).to_have_count(40)
    assert at_bottom(page)

    post_message(api, "bob", "arrives while at the bottom")
    expect(message_text(page, "arrives while at the bottom")).to_have_count(1)
    page.wait_for_function(
        "() => { const s = document.getElementById('scroller');"
        " return s.scrollHeight - s.scrollTop - s.clientHeight <= 2; }"
    )

    # Reading older messages: a new one must not yank the view, only offer a way down.
    page.locator("#scroller").evaluate("s => { s.scrollTop = 0; }")
    post_message(api, "bob", "arrives while reading")
    expect(message_text(page, "arrives while reading")).to_have_count(1)
    jump = page.get_by_role("button", name="New messages")
    expect(jump).to_be_visible()
    assert scroll_state(page)["top"] == 0
    jump.click()
    assert at_bottom(page)
    expect(jump).to_be_hidden()
    watched.assert_clean()


def test_messages_still_arrive_when_the_stream_never_opens(
    all_role: RunningRole, open_page: Callable[..., WatchedPage]
) -> None:
    # What a proxy that buffers responses (nginx without proxy_buffering off) does to a stream.
    watched = open_page(all_role.url + "/", before_load=lambda page: page.route("**/messages/stream*", stall))
    page = watched.page
    expect(page.get_by_role("status")).to_have_text("Connecting…")
    post_message(all_role.url + "/api", "bob", "sent while the stream is stuck")
    expect(message_text(page, "sent while the stream is stuck")).to_have_count(
        1, timeout=FALLBACK_POLL_MS + 3000
    )
    send(page, "ann", "and a reply")
    expect_sent(page, "and a reply")
    watched.assert_clean()


def stall(route: Route) -> None:
    """Leave the request unanswered, like a proxy holding the response back."""


def test_load_older_messages(all_role: RunningRole, open_page: Callable[..., WatchedPage]) -> None:
    api = all_role.url + "/api"
    for number in range(105):
        post_message(api, "bob", f"message {number}")
    watched = open_page(all_role.url + "/")
    page = watched.page
    expect_live(page)
    # The api's latest page is 100 messages.
    expect(message_log(page).locator(".msg")).to_have_count(100)
    assert message_texts(page)[0] == "message 5"

    older = page.get_by_role("button", name="Load older messages")
    older.click()
    expect(message_log(page).locator(".msg")).to_have_count(105)
    assert message_texts(page) == [f"message {number}" for number in range(105)]
    expect(older).to_be_hidden()
    watched.assert_clean()


@pytest.mark.parametrize(
    "api_url",
    [
        "/api/",  # nginx-style, with the trailing slash
        "api",  # relative to the page
        "http://127.0.0.1:{port}/api",  # absolute, same origin
    ],
)
def test_api_url_forms(
    api_url: str, start_role: Callable[..., RunningRole], open_page: Callable[..., WatchedPage]
) -> None:
    port = free_port()
    role = start_role("all", env={**quiet_crawler_env(), "API_URL": api_url.format(port=port)}, port=port)
    watched = open_page(role.url + "/")
    expect_live(watched.page)
    send(watched.page, "ann", f"via {api_url}")
    expect_sent(watched.page, f"via {api_url}")
    watched.assert_clean()


def test_a_stream_answering_404_is_polled_until_it_comes_back(
    all_role: RunningRole, open_page: Callable[..., WatchedPage]
) -> None:
    # A proxy that forwards /messages but not /messages/stream (for a while): the page polls
    # instead of "Reconnecting…" forever, and takes the stream up again once it answers.
    def no_stream(page: Page) -> None:
        page.clock.install()
        page.route("**/messages/stream*", lambda route: route.fulfill(status=404, body="404 page not found"))

    watched = open_page(all_role.url + "/", before_load=no_stream)
    page = watched.page
    status = page.get_by_role("status")
    expect(status).to_have_text("Refreshing every 5 s")
    post_message(all_role.url + "/api", "bob", "found by polling")
    page.clock.fast_forward(FALLBACK_POLL_MS)
    # A poll already on its way when the message was posted misses it; the next one, a
    # poll interval later (the clock runs on), finds it: as in the stalled-stream test.
    expect(message_text(page, "found by polling")).to_have_count(1, timeout=FALLBACK_POLL_MS + 3000)

    page.unroute("**/messages/stream*")
    # The page asks again about once a minute.
    page.clock.fast_forward(61_000)
    expect_live(page)
    post_message(all_role.url + "/api", "bob", "delivered live again")
    expect(message_text(page, "delivered live again")).to_have_count(1, timeout=LIVE_DELIVERY_MS)
    assert message_texts(page) == ["found by polling", "delivered live again"]
    watched.assert_clean(allow=is_failed_request_log)
