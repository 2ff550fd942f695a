"""What a user does on the chat page, in the page's own accessible terms."""

from __future__ import annotations

from playwright.sync_api import Locator, Page, expect

# The push channel must beat the original's 5 s polling by far.
LIVE_DELIVERY_MS = 2000


def message_log(page: Page) -> Locator:
    return page.get_by_role("log")


def message_texts(page: Page) -> list[str]:
    return message_log(page).locator(".msg-text").all_text_contents()


def message_text(page: Page, text: str) -> Locator:
    return message_log(page).locator(".msg-text").filter(has_text=text)


def expect_live(page: Page) -> None:
    """The page loaded the history and its push channel is open."""
    expect(page.get_by_role("status")).to_have_text("Live")


def send(page: Page, username: str, text: str) -> None:
    """Type a name and a message and press Enter, as a user would."""
    page.get_by_label("Username", exact=True).fill(username)
    box = page.get_by_label("Message", exact=True)
    box.fill(text)
    box.press("Enter")


def expect_sent(page: Page, text: str) -> None:
    """The message box emptied (the api answered 201) and the message shows."""
    expect(page.get_by_label("Message", exact=True)).to_have_value("")
    expect(message_text(page, text)).to_have_count(1)


def scroll_state(page: Page) -> dict[str, float]:
    state: dict[str, float] = page.locator("#scroller").evaluate(
        "s => ({top: s.scrollTop, height: s.scrollHeight, client: s.clientHeight})"
    )
    return state


def at_bottom(page: Page) -> bool:
    state = scroll_state(page)
    return state["height"] - state["top"] - state["client"] <= 2
