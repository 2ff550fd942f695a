"""The page on a phone and on a desktop: nothing overflows sideways, the controls stay reachable."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from tests.support.processes import RunningRole

from .chat import expect_live, expect_sent, send
from .conftest import DESKTOP, PHONE, WatchedPage, post_message, quiet_crawler_env

pytestmark = pytest.mark.browser

# Set to a folder to keep the screenshots for a look (they always go to the test's tmp_path).
SCREENSHOT_DIR = os.environ.get("SYNERGYCHAT_SCREENSHOT_DIR")


def seed_conversation(api: str) -> None:
    post_message(api, "ann", "hi everyone!")
    post_message(api, "ann", "anyone reading Frankenstein?")
    post_message(api, "bob", "Halfway through. The creature's speech on the mountain is something else.")
    post_message(api, "bob", "/stats keywords=love,hate title=Frankenstein")
    # Long unbroken words and names are where narrow layouts break.
    post_message(api, "a_rather_long_username_for_a_phone_screen_xx", "w" * 300)
    post_message(api, "dave", "https://example.org/" + "very-long-path-segment/" * 12)


def horizontal_overflow(page: Page) -> int:
    overflow: int = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    return overflow


def screenshot(page: Page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=tmp_path / f"{name}.png")
    if SCREENSHOT_DIR:
        page.screenshot(path=Path(SCREENSHOT_DIR) / f"synergychat-{name}.png")


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_fits_the_screen(
    viewport: ViewportSize,
    start_role: Callable[..., RunningRole],
    open_page: Callable[..., WatchedPage],
    tmp_path: Path,
) -> None:
    role = start_role("all", env=quiet_crawler_env())
    seed_conversation(role.url + "/api")
    watched = open_page(role.url + "/", viewport=viewport)
    page = watched.page
    expect_live(page)
    send(page, "ann", "and one from this page")
    expect_sent(page, "and one from this page")

    assert horizontal_overflow(page) <= 0
    assert page.locator("#scroller").evaluate("s => s.scrollWidth - s.clientWidth") <= 0
    for control in (
        page.get_by_role("button", name="Send", exact=True),
        page.get_by_label("Message", exact=True),
        page.get_by_label("Username", exact=True),
    ):
        expect(control).to_be_visible()
        expect(control).to_be_in_viewport()
    # Big enough to hit with a thumb.
    send_box = page.get_by_role("button", name="Send", exact=True).bounding_box()
    assert send_box is not None and send_box["height"] >= 40 and send_box["width"] >= 44
    screenshot(page, tmp_path, "phone" if viewport == PHONE else "desktop")
    watched.assert_clean()


# ---- larger text, zoom, less motion ----

# Elements that clip what they hold (overflow hidden or clip) and hold more than they show.
# Inputs scroll their own text; visually hidden text (1 px boxes) is meant to be off screen.
CLIPPED = """() => [...document.querySelectorAll('body *')].filter((e) => {
  if (e.matches('input, textarea') || e.clientWidth <= 1 || e.clientHeight <= 1) return false;
  if (e.closest('[hidden]')) return false;
  const style = getComputedStyle(e);
  const clips = (value) => value === 'hidden' || value === 'clip';
  return (clips(style.overflowX) && e.scrollWidth > e.clientWidth + 1) ||
         (clips(style.overflowY) && e.scrollHeight > e.clientHeight + 1);
}).map((e) => e.id || e.className || e.tagName)"""


def set_default_text_size(page: Page, pixels: int) -> None:
    """What a reader's browser setting does: the default (medium) font size, here 16 px."""
    session = page.context.new_cdp_session(page)
    session.send("Page.enable")
    session.send("Page.setFontSizes", {"fontSizes": {"standard": pixels, "fixed": pixels * 13 // 16}})


def expect_usable(page: Page) -> None:
    """Nothing sideways, nothing cut off, every control and the newest message within reach."""
    assert horizontal_overflow(page) <= 0
    assert page.evaluate(CLIPPED) == []
    for control in (
        page.get_by_label("Username", exact=True),
        page.get_by_label("Message", exact=True),
        page.get_by_role("button", name="Send", exact=True),
        page.get_by_text("for book stats"),
        page.locator(".msg-text").last,
    ):
        control.scroll_into_view_if_needed()
        expect(control).to_be_in_viewport()


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_text_at_twice_the_size(
    viewport: ViewportSize,
    start_role: Callable[..., RunningRole],
    open_page: Callable[..., WatchedPage],
    tmp_path: Path,
) -> None:
    role = start_role("all", env=quiet_crawler_env())
    seed_conversation(role.url + "/api")
    watched = open_page(
        role.url + "/", viewport=viewport, before_load=lambda page: set_default_text_size(page, 32)
    )
    page = watched.page
    expect_live(page)
    # The page's text follows the reader's setting (15 px at the usual 16 px).
    assert page.evaluate("getComputedStyle(document.body).fontSize") == "30px"
    send(page, "ann", "and one from this page")
    expect_sent(page, "and one from this page")
    expect_usable(page)
    screenshot(page, tmp_path, "text-200-" + ("phone" if viewport == PHONE else "desktop"))
    watched.assert_clean()


@pytest.mark.parametrize("zoom", [2, 4])
def test_zoomed_in(
    zoom: int, start_role: Callable[..., RunningRole], open_page: Callable[..., WatchedPage], tmp_path: Path
) -> None:
    # Browser zoom on a 1280x800 screen: fewer, larger CSS pixels (400 % is WCAG's reflow case).
    role = start_role("all", env=quiet_crawler_env())
    seed_conversation(role.url + "/api")
    viewport: ViewportSize = {"width": DESKTOP["width"] // zoom, "height": DESKTOP["height"] // zoom}
    watched = open_page(role.url + "/", viewport=viewport, device_scale_factor=zoom)
    page = watched.page
    expect_live(page)
    expect_usable(page)
    screenshot(page, tmp_path, f"zoom-{zoom * 100}")
    watched.assert_clean()


def test_reduced_motion_stills_the_page(
    start_role: Callable[..., RunningRole], open_page: Callable[..., WatchedPage]
) -> None:
    role = start_role("all", env=quiet_crawler_env())

    def open_connecting(reduce: bool) -> Page:
        # "Connecting…" pulses: the stream is held unanswered, as a buffering proxy would.
        def prepare(page: Page) -> None:
            page.emulate_media(reduced_motion="reduce" if reduce else "no-preference")
            page.route("**/messages/stream*", lambda route: None)

        page = open_page(role.url + "/", before_load=prepare).page
        expect(page.get_by_role("status")).to_have_text("Connecting…")
        page.get_by_role("button", name="Send", exact=True).hover()
        return page

    moving = open_connecting(reduce=False)
    # Without the preference there is motion, so the check below can fail.
    assert moving.evaluate("document.getAnimations().length") > 0

    still = open_connecting(reduce=True)
    assert still.evaluate("document.getAnimations().length") == 0
    transitions = still.evaluate(
        "[...document.querySelectorAll('*')].map(e => getComputedStyle(e).transitionDuration)"
        ".filter(d => d.split(',').some(part => parseFloat(part) > 0))"
    )
    assert transitions == []
