"""The page with a keyboard only: every control in a sensible order, each with a focus ring
one can see, Enter sends, Shift+Enter adds a line, and focus never gets stuck or lost."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import FloatRect, Page, expect

from tests.support.processes import RunningRole

from .chat import expect_live, expect_sent, message_log, message_text, message_texts
from .conftest import DESKTOP, PHONE, WatchedPage, post_message, quiet_crawler_env

pytestmark = pytest.mark.browser

EXAMPLES = [
    "button /stats",
    "button /stats keywords=love,hate",
    "button /stats title=Frankenstein",
    'button /stats keywords=love title="Jekyll and Hyde"',
]
CHAT_CONTROLS = ["log Messages", "textbox Username", "textbox Message", "button Send"]
HELP_SUMMARY = "summary Ask crawler-bot for book stats"
# How far around a control its focus ring may be drawn.
RING_MARGIN_PX = 6


@pytest.fixture
def all_role(start_role: Callable[..., RunningRole]) -> RunningRole:
    return start_role("all", env=quiet_crawler_env())


def focused(page: Page) -> str:
    """The focused element as "role name", or "page" when nothing on it has focus."""
    found: str = page.evaluate(
        """() => {
          const e = document.activeElement;
          if (!e || e === document.body) return 'page';
          const label = e.labels && e.labels[0] ? e.labels[0].textContent : null;
          const name = label || e.getAttribute('aria-label') ||
            (e.getAttribute('aria-labelledby') &&
             document.getElementById(e.getAttribute('aria-labelledby')).textContent) || e.textContent;
          const role = e.getAttribute('role') || {INPUT: 'textbox', TEXTAREA: 'textbox'}[e.tagName] ||
            e.tagName.toLowerCase();
          return `${role} ${name.replace(/\\s+/g, ' ').trim()}`;
        }"""
    )
    return found


def ring_area(page: Page) -> FloatRect:
    """The focused element's box and a margin around it, inside the viewport."""
    box = page.evaluate(
        "() => { const r = document.activeElement.getBoundingClientRect();"
        " return {x: r.x, y: r.y, width: r.width, height: r.height}; }"
    )
    viewport = page.viewport_size
    assert viewport is not None
    x = max(box["x"] - RING_MARGIN_PX, 0)
    y = max(box["y"] - RING_MARGIN_PX, 0)
    return {
        "x": x,
        "y": y,
        "width": min(box["x"] + box["width"] + RING_MARGIN_PX, viewport["width"]) - x,
        "height": min(box["y"] + box["height"] + RING_MARGIN_PX, viewport["height"]) - y,
    }


def tab_through(page: Page, stops: int) -> list[str]:
    """Press Tab ``stops`` times from where focus is; each stop must look different focused
    than after focus moved on (pixels compared: a ring one can see, not just a style)."""
    order = []
    for _ in range(stops):
        page.keyboard.press("Tab")
        order.append(focused(page))
        if order[-1] == "page":
            continue
        area = ring_area(page)
        with_focus = page.screenshot(clip=area)
        page.keyboard.press("Tab")
        without_focus = page.screenshot(clip=area)
        page.keyboard.press("Shift+Tab")
        assert with_focus != without_focus, f"no visible focus on {order[-1]}"
    return order


def test_desktop_tab_order_with_visible_focus_and_no_trap(
    all_role: RunningRole, open_page: Callable[..., WatchedPage]
) -> None:
    post_message(all_role.url + "/api", "bob", "hello")
    watched = open_page(all_role.url + "/", viewport=DESKTOP)
    page = watched.page
    expect_live(page)
    # The help sits beside the chat on a wide screen, open; it comes after the chat, as drawn.
    expected = [*CHAT_CONTROLS, HELP_SUMMARY, *EXAMPLES]
    # One more Tab leaves the page (to the browser's own controls), the next comes back to
    # the start: nothing holds the focus.
    assert tab_through(page, len(expected) + 2) == [*expected, "page", expected[0]]
    # And backwards.
    page.keyboard.press("Shift+Tab")
    assert focused(page) == "page"
    page.keyboard.press("Shift+Tab")
    assert focused(page) == expected[-1]
    watched.assert_clean()


def test_phone_tab_order_opens_the_help_with_the_keyboard(
    all_role: RunningRole, open_page: Callable[..., WatchedPage]
) -> None:
    watched = open_page(all_role.url + "/", viewport=PHONE)
    page = watched.page
    expect_live(page)
    # Folded below the chat on a phone: its examples are not stops until it opens.
    assert tab_through(page, 5) == [*CHAT_CONTROLS, HELP_SUMMARY]
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="/stats title=Frankenstein")).to_be_visible()
    assert tab_through(page, 4) == EXAMPLES
    watched.assert_clean()


def test_chatting_with_the_keyboard_only(
    all_role: RunningRole, open_page: Callable[..., WatchedPage]
) -> None:
    watched = open_page(all_role.url + "/", viewport=DESKTOP)
    page = watched.page
    expect_live(page)
    keyboard = page.keyboard
    keyboard.press("Tab")
    keyboard.press("Tab")
    assert focused(page) == "textbox Username"
    keyboard.type("ann")
    keyboard.press("Tab")
    keyboard.type("first line")
    keyboard.press("Shift+Enter")
    keyboard.type("second line")
    expect(page.get_by_label("Message", exact=True)).to_have_value("first line\nsecond line")
    keyboard.press("Enter")
    expect_sent(page, "first line")
    assert message_texts(page) == ["first line\nsecond line"]
    # Ready for the next message.
    assert focused(page) == "textbox Message"

    # An example chosen with the keyboard lands in the message box, and Enter sends it.
    keyboard.press("Tab")
    keyboard.press("Tab")
    assert focused(page) == HELP_SUMMARY
    keyboard.press("Tab")
    keyboard.press("Tab")
    assert focused(page) == EXAMPLES[1]
    keyboard.press("Enter")
    expect(page.get_by_label("Message", exact=True)).to_have_value("/stats keywords=love,hate")
    assert focused(page) == "textbox Message"
    keyboard.press("Enter")
    expect_sent(page, "/stats keywords=love,hate")
    expect(message_log(page).locator(".msg-bot")).to_have_count(1)
    watched.assert_clean()


def test_new_messages_button_with_the_keyboard(
    all_role: RunningRole, open_page: Callable[..., WatchedPage]
) -> None:
    api = all_role.url + "/api"
    for number in range(40):
        post_message(api, "bob", f"backlog message {number}")
    watched = open_page(all_role.url + "/", viewport=DESKTOP)
    page = watched.page
    expect_live(page)
    page.keyboard.press("Tab")
    assert focused(page) == "log Messages"
    # The focused log scrolls with the keys.
    page.keyboard.press("Home")
    page.wait_for_function("() => document.getElementById('scroller').scrollTop === 0")

    post_message(api, "bob", "arrives while reading")
    expect(message_text(page, "arrives while reading")).to_have_count(1)
    jump = page.get_by_role("button", name="New messages")
    expect(jump).to_be_visible()
    page.keyboard.press("Tab")
    expect(jump).to_be_focused()
    page.keyboard.press("Enter")
    expect(jump).to_be_hidden()
    page.wait_for_function(
        "() => { const s = document.getElementById('scroller');"
        " return s.scrollHeight - s.scrollTop - s.clientHeight <= 2; }"
    )
    # The button went away; focus went to the log it scrolled, not back to the page's start.
    assert focused(page) == "log Messages"
    watched.assert_clean()
