"""Chat the way the browser does, through whatever entry a deployment shape gives.

The page is opened at its public URL; ``API_URL`` is read from the page and
resolved against the page URL exactly as ``static/app.js`` does; every later
request goes to that api URL. ``Entry`` says how a public URL is reached from
the test (identity for nginx on 127.0.0.1; a Host header through a local
gateway for the minikube host names).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

BOT_USERNAME = "crawler-bot"
CONFIG_SCRIPT = re.compile(
    r'<script id="synergychat-config" type="application/json">(.*?)</script>', re.DOTALL
)
STATS_REPLY = re.compile(r"I have found (\d+) matches")


@dataclass
class Entry:
    """Where a public URL's host is reached from this machine: ``{host: 'http://127.0.0.1:PORT'}``.

    A mapped host is connected to at the given address, with the public host in
    the Host header, as a load balancer in front of it would receive it.
    """

    hosts: Mapping[str, str] = field(default_factory=dict)

    def locate(self, url: URL) -> tuple[URL, dict[str, str]]:
        target = self.hosts.get(url.host or "")
        if target is None:
            return url, {}
        return URL(target).with_path(url.path).with_query(url.query), {"Host": url.host or ""}


@dataclass
class ChatBrowser:
    session: aiohttp.ClientSession
    entry: Entry = field(default_factory=Entry)

    async def request(
        self, method: str, url: URL, expected_status: int = 200, **kwargs: Any
    ) -> tuple[aiohttp.ClientResponse, bytes]:
        target, headers = self.entry.locate(url)
        async with self.session.request(
            method, target, headers={**headers, **kwargs.pop("headers", {})}, **kwargs
        ) as response:
            body = await response.read()
        assert response.status == expected_status, (
            f"{method} {url} -> {response.status}, expected {expected_status}: {body[:500]!r}"
        )
        return response, body

    async def json(self, method: str, url: URL, expected_status: int = 200, **kwargs: Any) -> Any:
        _, body = await self.request(method, url, expected_status, **kwargs)
        return json.loads(body)

    async def open_page(self, page_url: str) -> URL:
        """Load the page and its script; return the api base URL the page would use."""
        url = URL(page_url)
        response, body = await self.request("GET", url)
        assert response.content_type == "text/html", response.content_type
        page = body.decode()
        match = CONFIG_SCRIPT.search(page)
        assert match, "the page carries no synergychat-config"
        api_url = json.loads(match.group(1))["apiUrl"].strip()
        assert api_url, "API_URL is empty: the page cannot chat"
        script, _ = await self.request("GET", url.join(URL("app.js")))
        assert "javascript" in script.content_type, script.content_type
        # As app.js: one trailing slash whatever API_URL ends with, then relative to the page.
        return url.join(URL(api_url.rstrip("/") + "/"))

    async def post(self, api: URL, author: str, text: str) -> list[dict[str, Any]]:
        payload = {"AuthorUsername": author, "Text": text}
        messages = await self.json("POST", api.join(URL("messages")), 201, json=payload)
        assert isinstance(messages, list)
        return messages

    async def messages(self, api: URL) -> list[dict[str, Any]]:
        messages = await self.json("GET", api.join(URL("messages")))
        assert isinstance(messages, list)
        return messages

    async def stats_until_counted(self, api: URL, timeout: float = 60.0) -> str:
        """Ask crawler-bot until it has counted something (the crawl runs in the background)."""
        deadline = time.monotonic() + timeout
        while True:
            messages = await self.post(api, "tester", "/stats keywords=love")
            replies: list[str] = [m["Text"] for m in messages if m["AuthorUsername"] == BOT_USERNAME]
            assert replies, f"no reply from {BOT_USERNAME}: {messages[-3:]}"
            match = STATS_REPLY.search(replies[-1])
            assert match, f"{BOT_USERNAME} could not answer: {replies[-1]!r}"
            if int(match.group(1)) > 0:
                return replies[-1]
            assert time.monotonic() < deadline, f"nothing counted within {timeout} s: {replies[-1]!r}"
            await asyncio.sleep(1)

    @asynccontextmanager
    async def stream(self, api: URL) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        """Open the push channel; yields a queue of the messages it delivers."""
        target, headers = self.entry.locate(api.join(URL("messages/stream")))
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self.session.get(
            target, headers={**headers, "Accept": "text/event-stream"}, timeout=timeout
        ) as response:
            assert response.status == 200, response.status
            assert response.content_type == "text/event-stream", response.content_type

            async def read() -> None:
                event, data = "message", list[str]()
                async for raw in response.content:
                    line = raw.decode().rstrip("\r\n")
                    if not line:
                        if data and event == "message":
                            queue.put_nowait(json.loads("\n".join(data)))
                        event, data = "message", []
                    elif line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].lstrip())

            reader = asyncio.create_task(read())
            transport = response.connection.transport if response.connection else None
            try:
                yield queue
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
                # Drop the connection as a closed tab does; a TLS close would wait on the peer.
                if transport is not None:
                    transport.abort()


async def wait_for_text(
    queue: asyncio.Queue[dict[str, Any]], text: str, timeout: float = 10.0
) -> dict[str, Any]:
    async def find() -> dict[str, Any]:
        while True:
            message = await queue.get()
            if message.get("Text") == text:
                return message

    return await asyncio.wait_for(find(), timeout)


async def chat_end_to_end(browser: ChatBrowser, page_url: str, expected_api: str | None = None) -> None:
    """Page, post, /stats answered by crawler-bot, and the push channel."""
    api = await browser.open_page(page_url)
    if expected_api is not None:
        assert str(api) == expected_api
    await browser.json("GET", api.join(URL("healthz")))
    first = f"hello from the deploy tests {time.time()}"
    messages = await browser.post(api, "alice", first)
    assert messages[-1]["Text"] == first and messages[-1]["AuthorUsername"] == "alice"
    reply = await browser.stats_until_counted(api)
    assert "Beep boop!" in reply
    async with browser.stream(api) as pushed:
        # The api subscribes before it answers, so a post made now is pushed.
        second = f"pushed {time.time()}"
        await browser.post(api, "bob", second)
        delivered = await wait_for_text(pushed, second)
        assert delivered["AuthorUsername"] == "bob"
    assert any(m["Text"] == second for m in await browser.messages(api))
