"""axe-core finds nothing on the page, in every state a user meets, in both colour schemes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from tests.support.processes import RunningRole, free_port

from .accessibility import axe_violations
from .chat import expect_live, expect_sent, message_log, message_text, send
from .conftest import DESKTOP, PHONE, WatchedPage, is_failed_request_log, post_message, quiet_crawler_env

pytestmark = pytest.mark.browser

ColorScheme = Literal["light", "dark"]

SCREENS = [
    pytest.param(DESKTOP, "light", id="desktop-light"),
    pytest.param(PHONE, "dark", id="phone-dark"),
    # Contrast must hold in both schemes whatever the screen.
    pytest.param(DESKTOP, "dark", id="desktop-dark"),
    pytest.param(PHONE, "light", id="phone-light"),
]


def in_scheme(scheme: ColorScheme) -> Callable[[Page], None]:
    return lambda page: page.emulate_media(color_scheme=scheme)


def seed_conversation(api: str) -> None:
    # Past one page (100): the "Load older messages" button shows too.
    for number in range(100):
        post_message(api, "carol", f"earlier message {number}")
    post_message(api, "ann", "hi everyone!")
    post_message(api, "bob", "Halfway through Frankenstein.\nThe creature's speech is something else.")
    post_message(api, "bob", "/stats keywords=love,hate title=Frankenstein")
    post_message(api, "a_rather_long_username_for_a_phone_screen_xx", "w" * 300)


def check(page: Page, state: str, found: dict[str, list[str]]) -> None:
    violations = axe_violations(page)
    if violations:
        found[state] = violations


@pytest.mark.parametrize(("viewport", "scheme"), SCREENS)
def test_no_axe_violations_in_any_state(
    viewport: ViewportSize,
    scheme: ColorScheme,
    start_role: Callable[..., RunningRole],
    open_page: Callable[..., WatchedPage],
) -> None:
    role = start_role("all", env=quiet_crawler_env())
    api = role.url + "/api"
    seed_conversation(api)
    watched = open_page(role.url + "/", viewport=viewport, before_load=in_scheme(scheme))
    page = watched.page
    found: dict[str, list[str]] = {}

    expect_live(page)
    expect(page.get_by_role("button", name="Load older messages")).to_be_visible()
    # One's own messages are drawn in the accent colour.
    send(page, "ann", "and one from this page")
    expect_sent(page, "and one from this page")
    expect(message_log(page).locator(".msg-bot")).to_have_count(1)
    check(page, "people and the bot", found)

    # Reading further up while a message arrives: the "New messages" button shows.
    page.locator("#scroller").evaluate("s => { s.scrollTop = 0; }")
    post_message(api, "bob", "arrives while reading")
    expect(message_text(page, "arrives while reading")).to_have_count(1)
    expect(page.get_by_role("button", name="New messages")).to_be_visible()
    check(page, "new messages below", found)

    help_summary = page.get_by_text("for book stats")
    if page.locator("#help").get_attribute("open") is None:
        help_summary.click()
    expect(page.get_by_role("button", name="/stats title=Frankenstein")).to_be_visible()
    check(page, "stats help open", found)

    send(page, "ann", "x" * 4001)
    form_error = page.locator("#composer").get_by_role("alert")
    expect(form_error).to_be_visible()
    expect(page.get_by_label("Message", exact=True)).to_have_attribute("aria-invalid", "true")
    check(page, "inline error", found)

    page.get_by_label("Username", exact=True).fill("")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(form_error).to_have_text("Choose a username first.")
    check(page, "username missing", found)

    assert found == {}, "\n".join(f"{state}:\n  " + "\n  ".join(lines) for state, lines in found.items())
    # The 400 for the long message is logged by Chromium; nothing else may be.
    watched.assert_clean(allow=is_failed_request_log)


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("problem", ["not configured", "offline"])
def test_no_axe_violations_with_the_page_wide_error(
    scheme: ColorScheme,
    problem: str,
    start_role: Callable[..., RunningRole],
    open_page: Callable[..., WatchedPage],
) -> None:
    api_url = "" if problem == "not configured" else f"http://127.0.0.1:{free_port()}"
    web = start_role("web", env={"API_URL": api_url})
    watched = open_page(web.url + "/", before_load=in_scheme(scheme))
    page = watched.page
    expect(page.locator("#banner")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text(problem.capitalize())
    expect(page.get_by_text("No messages yet")).to_be_hidden()
    assert axe_violations(page) == []
    watched.assert_clean(allow=lambda text: is_failed_request_log(text) or "ERR_CONNECTION_REFUSED" in text)
