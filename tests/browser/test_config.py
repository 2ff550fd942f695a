"""What the page does when API_URL is missing or points nowhere useful."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from tests.support.processes import RunningRole, free_port

from .chat import message_log
from .conftest import WatchedPage, is_failed_request_log

pytestmark = pytest.mark.browser


def test_empty_api_url_shows_an_inline_error(
    start_role: Callable[..., RunningRole], open_page: Callable[..., WatchedPage]
) -> None:
    web = start_role("web", env={"API_URL": ""})
    watched = open_page(web.url + "/")
    page = watched.page
    banner = page.locator("#banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("API_URL")
    expect(page.get_by_role("status")).to_have_text("Not configured")
    # The rest of the page still works: the form is there and says why it can't send.
    page.get_by_label("Username", exact=True).fill("ann")
    page.get_by_label("Message", exact=True).fill("anyone?")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.locator("#composer").get_by_role("alert")).to_contain_text("API_URL")
    expect(message_log(page).locator(".msg")).to_have_count(0)
    # Nothing was requested from anywhere, so nothing at all is logged.
    watched.assert_clean()


def test_unreachable_api_shows_an_inline_error_and_keeps_retrying(
    start_role: Callable[..., RunningRole], open_page: Callable[..., WatchedPage]
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    web = start_role("web", env={"API_URL": nowhere})
    watched = open_page(web.url + "/")
    page = watched.page
    expect(page.locator("#banner")).to_contain_text("Could not load messages")
    expect(page.get_by_role("status")).to_have_text("Offline")
    watched.assert_clean(allow=lambda text: is_failed_request_log(text) or "ERR_CONNECTION_REFUSED" in text)


def test_api_url_pointing_at_the_page_says_so(
    start_role: Callable[..., RunningRole], open_page: Callable[..., WatchedPage]
) -> None:
    # A classic mistake: API_URL is the web role itself, which answers 404 for /messages.
    port = free_port()
    web = start_role("web", env={"API_URL": f"http://127.0.0.1:{port}"}, port=port)
    watched = open_page(web.url + "/")
    expect(watched.page.locator("#banner")).to_contain_text("Could not load messages")
    watched.assert_clean(allow=is_failed_request_log)
