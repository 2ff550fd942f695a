"""Our page in front of the original Go api (a drop-in mix people may run mid-migration).

That api has no ids, no timestamps and no stream; every answer is the whole
history. The page must still chat, by polling as the original page did, whether
the api had messages when the page loaded or not.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import ClassVar

import pytest
from playwright.sync_api import expect

from tests.support.processes import RunningRole
from tests.support.threaded_http import serving

from .accessibility import record_speech, spoken_texts
from .chat import expect_sent, message_text, message_texts, send
from .conftest import WatchedPage, is_failed_request_log, post_message

pytestmark = pytest.mark.browser

# The original page polls every 5 s; allow one period and some.
POLL_MS = 7000


class OriginalApi(BaseHTTPRequestHandler):
    """The original's /messages, as its wire format and CORS answer it."""

    messages: ClassVar[list[dict[str, str]]] = []  # the one store every request handler shares

    def log_message(self, format: str, *args: object) -> None:
        pass

    def cors(self) -> None:
        origin = self.headers.get("Origin")
        if origin:
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
            self.send_header("Access-Control-Allow-Headers", "*")

    def answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.cors()
        self.end_headers()
        self.wfile.write(data)

    def do_OPTIONS(self) -> None:
        self.send_response(204)
        self.cors()
        self.end_headers()

    def do_GET(self) -> None:
        if self.path.split("?")[0] != "/messages":
            # Go's router: a plain-text 404, with the CORS headers its middleware adds to every answer.
            data = b"404 page not found\n"
            self.send_response(404)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.cors()
            self.end_headers()
            self.wfile.write(data)
            return
        self.answer(200, self.messages)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.messages.append({"AuthorUsername": body["AuthorUsername"], "Text": body["Text"]})
        self.answer(201, self.messages)


@pytest.fixture
def original_api() -> Iterator[str]:
    with serving(type("Handler", (OriginalApi,), {"messages": []})) as url:
        yield url


def test_chats_through_the_original_api_by_polling(
    original_api: str, start_role: Callable[..., RunningRole], open_page: Callable[..., WatchedPage]
) -> None:
    post_message(original_api, "john_doe", "Hello, world!")
    web = start_role("web", env={"API_URL": original_api})
    ann = open_page(web.url + "/")
    bob = open_page(web.url + "/")
    expect(message_text(ann.page, "Hello, world!")).to_have_count(1)
    expect(ann.page.get_by_role("status")).to_have_text("Refreshing every 5 s")

    send(ann.page, "ann", "hi from the new page")
    expect_sent(ann.page, "hi from the new page")
    expect(message_text(bob.page, "hi from the new page")).to_have_count(1, timeout=POLL_MS)
    assert message_texts(bob.page) == ["Hello, world!", "hi from the new page"]
    # No "Load older": the original has no pages.
    expect(ann.page.get_by_role("button", name="Load older messages")).to_be_hidden()
    ann.assert_clean()
    bob.assert_clean()


def test_an_original_api_empty_at_load_is_polled_too(
    original_api: str, start_role: Callable[..., RunningRole], open_page: Callable[..., WatchedPage]
) -> None:
    # An empty list doesn't tell the original from ours; its stream URL answering 404 does.
    web = start_role("web", env={"API_URL": original_api})
    ann = open_page(web.url + "/", before_load=record_speech)
    bob = open_page(web.url + "/", before_load=record_speech)
    for watched in (ann, bob):
        expect(watched.page.get_by_text("No messages yet")).to_be_visible()
        expect(watched.page.get_by_role("status")).to_have_text("Refreshing every 5 s")

    send(ann.page, "ann", "first!")
    expect_sent(ann.page, "first!")
    expect(ann.page.get_by_text("No messages yet")).to_be_hidden()
    # Bob's page never sent anything: its poll finds the message.
    expect(message_text(bob.page, "first!")).to_have_count(1, timeout=POLL_MS)

    post_message(original_api, "carol", "and another client")
    for watched in (ann, bob):
        expect(message_text(watched.page, "and another client")).to_have_count(1, timeout=POLL_MS)
        assert message_texts(watched.page) == ["first!", "and another client"]
        watched.page.wait_for_timeout(1000)
        said = spoken_texts(watched.page)
        # Never "Reconnecting…": the missing stream is known, not retried forever.
        assert "Reconnecting…" not in said
        assert said.count("carol: and another client") == 1
    assert spoken_texts(bob.page).count("ann: first!") == 1
    # Chromium logs the stream's 404.
    ann.assert_clean(allow=is_failed_request_log)
    bob.assert_clean(allow=is_failed_request_log)
