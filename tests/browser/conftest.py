"""Headless Chromium (Debian's, driven by Playwright's sync API) against real synergychat processes.

The tests are plain functions, not coroutines: Playwright's sync API runs its own
event loop and refuses to start inside a running one, and pytest-asyncio only
runs a loop for async tests.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    ViewportSize,
    sync_playwright,
)

from tests.support.processes import RunningRole, free_port, running_role

CHROMIUM = Path(os.environ.get("SYNERGYCHAT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 375, "height": 740}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    # Kept on the item so the page fixture can take screenshots of a failed test.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (scripts/apt-test-packages.txt)")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@dataclass
class WatchedPage:
    """A page in its own browser context (own localStorage), with what went wrong on it."""

    page: Page
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def assert_clean(self, allow: Callable[[str], bool] = lambda text: False) -> None:
        """No uncaught exceptions, no alert()s, no console errors (CSP violations are some)."""
        assert self.page_errors == []
        assert self.dialogs == []
        assert [text for text in self.console_errors if not allow(text)] == []


def is_failed_request_log(text: str) -> bool:
    """Chromium's own log line for a request that failed or answered 4xx/5xx, not the page's doing."""
    return text.startswith("Failed to load resource")


@pytest.fixture
def open_page(
    browser: Browser, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., WatchedPage]]:
    contexts: list[tuple[BrowserContext, WatchedPage]] = []

    def open_page(
        url: str,
        viewport: ViewportSize = DESKTOP,
        before_load: Callable[[Page], None] | None = None,
        device_scale_factor: float = 1,
    ) -> WatchedPage:
        # A device scale factor over 1 with a smaller viewport is what browser zoom does.
        context = browser.new_context(viewport=viewport, device_scale_factor=device_scale_factor)
        page = context.new_page()
        if before_load is not None:
            before_load(page)
        watched = WatchedPage(page)
        page.on("console", lambda message: _record_console(watched, message))
        page.on("pageerror", lambda error: watched.page_errors.append(str(error)))

        def dismiss(dialog: Any) -> None:
            watched.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", dismiss)
        contexts.append((context, watched))
        page.goto(url)
        return watched

    yield open_page

    failed = getattr(request.node, "report_call", None)
    for number, (context, watched) in enumerate(contexts):
        if failed is not None and failed.failed:
            path = tmp_path / f"page-{number}.png"
            watched.page.screenshot(path=path, full_page=True)
            print(f"screenshot of page {number}: {path}")
            print(
                f"page {number} console errors: {watched.console_errors}; page errors: {watched.page_errors}"
            )
        context.close()


def _record_console(watched: WatchedPage, message: ConsoleMessage) -> None:
    if message.type == "error":
        watched.console_errors.append(message.text)


# ---- the processes under test ----


def quiet_crawler_env() -> dict[str, str]:
    """Keep an in-process crawler off the internet: its catalogue is a closed local port."""
    return {"CRAWLER_SOURCE_URL": f"http://127.0.0.1:{free_port()}", "CRAWLER_DELAY_SECONDS": "0"}


@pytest.fixture
def start_role(tmp_path: Path) -> Iterator[Callable[..., RunningRole]]:
    """Start ``python -m synergychat --role ROLE`` processes that stop when the test ends."""
    with ExitStack() as stack:

        def start(role: str, env: dict[str, str] | None = None, port: int | None = None) -> RunningRole:
            wait_path = "/" if role in ("web", "all") else "/healthz"
            return stack.enter_context(running_role(role, tmp_path, env=env, port=port, wait_path=wait_path))

        yield start


def post_message(api_base: str, author: str, text: str, expected_status: int = 201) -> Any:
    """POST as another client would (not through the page); returns the parsed JSON answer."""
    request = urllib.request.Request(
        api_base.rstrip("/") + "/messages",
        data=json.dumps({"AuthorUsername": author, "Text": text}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
        error.close()
    assert status == expected_status, body
    return json.loads(body)
