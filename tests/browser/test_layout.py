"""The page on a phone and on a desktop: nothing overflows sideways, the controls stay reachable."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

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
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


def screenshot(page: Page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=tmp_path / f"{name}.png")
    if SCREENSHOT_DIR:
        page.screenshot(path=Path(SCREENSHOT_DIR) / f"synergychat-{name}.png")


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_fits_the_screen(
    viewport: dict[str, int],
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
