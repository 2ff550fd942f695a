"""A hostile page in Chromium cannot store a message when API_CORS_ORIGINS is restricted.

The page tries every way a browser sends a cross-site POST: fetch in no-cors mode with
``text/plain``, fetch in cors mode (simple and preflighted), ``sendBeacon``, and HTML
forms (a ``text/plain`` form whose body parses as JSON, and an urlencoded one). The
same page served from an origin the api trusts stores its messages, so the attacks are
real ones.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from tests.support.processes import free_port
from tests.support.threaded_http import serving

pytestmark = pytest.mark.browser

ATTACK_PAGE = """<!doctype html>
<meta charset="utf-8">
<title>cute cats</title>
<iframe name="sink" style="display:none"></iframe>
<form id="plain" method="POST" enctype="text/plain" target="sink" action="API/messages">
  <input name='{"AuthorUsername": "mallory", "Text": "text/plain form", "pad": "' value='"}'>
</form>
<form id="urlencoded" method="POST" target="sink" action="API/messages">
  <input name="AuthorUsername" value="mallory"><input name="Text" value="urlencoded form">
</form>
<script>
const api = "API";
const body = (text) => JSON.stringify({AuthorUsername: "mallory", Text: text});
window.attacks = Promise.allSettled([
  fetch(api + "/messages", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"},
                            body: body("no-cors text/plain call")}),
  fetch(api + "/messages", {method: "POST", headers: {"Content-Type": "text/plain"},
                            body: body("cors text/plain call")}),
  fetch(api + "/messages", {method: "POST", headers: {"Content-Type": "application/json"},
                            body: body("cors json call")}),
  Promise.resolve(navigator.sendBeacon(api + "/messages",
                                       new Blob([body("beacon")], {type: "text/plain"}))),
]).then(() => {
  document.getElementById("plain").submit();
  setTimeout(() => document.getElementById("urlencoded").submit(), 200);
  return "sent";
});
</script>
"""
# ("fetch" itself is a blocked word the api masks.)
TECHNIQUES = {
    "no-cors text/plain call",
    "cors text/plain call",
    "cors json call",
    "beacon",
    "text/plain form",
}


@contextmanager
def page_server(api_url: str) -> Iterator[str]:
    html = ATTACK_PAGE.replace("API", api_url).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        yield url


def stored_texts(api_url: str) -> set[str]:
    with urllib.request.urlopen(api_url + "/messages", timeout=10) as response:
        return {message["Text"] for message in json.loads(response.read())}


def run_attack(open_page: Any, page_url: str, api_url: str, expected: set[str]) -> set[str]:
    watched = open_page(page_url)
    assert watched.page.evaluate("window.attacks") == "sent"
    # The forms post after the fetches; give them, and the api, time to land.
    deadline = time.monotonic() + 5
    texts = stored_texts(api_url)
    while texts != expected and time.monotonic() < deadline:
        time.sleep(0.2)
        texts = stored_texts(api_url)
    time.sleep(0.5)
    return stored_texts(api_url)


def test_a_hostile_page_stores_nothing(open_page: Any, start_role: Any, tmp_path: Any) -> None:
    # Two pages on other 127.0.0.1 ports: one the operator trusts, one hostile.
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    with page_server(api_url) as hostile, page_server(api_url) as trusted:
        api = start_role(
            "api",
            {"API_CORS_ORIGINS": trusted, "API_DB_FILEPATH": str(tmp_path / "messages.db")},
            port=api_port,
        )
        assert run_attack(open_page, hostile + "/", api.url, set()) == set()
        # The same page from the trusted origin gets through: the attacks above were real.
        assert run_attack(open_page, trusted + "/", api.url, TECHNIQUES) == TECHNIQUES
    assert "refused POST /messages" in api.log()
