"""A client that hangs up is the client's doing: logged at INFO as such, never a 500 with a traceback.

Real sockets against the api served as in production: the exceptions that arrive are the
ones aiohttp raises there, not ones a test client fakes.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import ClientSession, web

from synergychat.api import create_api_app
from synergychat.server import ChatAppRunner
from synergychat.settings import ApiSettings
from synergychat.transport import NoCrawlerClient
from tests.conftest import expect_json
from tests.support.processes import free_port


@dataclass
class Served:
    host: str
    port: int


@pytest.fixture
async def api_server(tmp_path: Any) -> AsyncIterator[Served]:
    # The runner production has: the test server of aiohttp cancels a handler whose
    # client left (handler_cancellation=True), so it never sees what arrives here.
    settings = ApiSettings(api_db_filepath=str(tmp_path / "messages.db"))
    runner = ChatAppRunner(
        create_api_app(settings, NoCrawlerClient()), max_connections=64, shutdown_timeout=5
    )
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield Served("127.0.0.1", port)
    finally:
        await runner.cleanup()


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST rather than a FIN, as a crashed client or a dropped link does."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def wait_for_access_line(caplog: pytest.LogCaptureFixture, fragment: str, timeout: float = 5.0) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        for record in caplog.records:
            if record.name == "synergychat.access" and fragment in record.getMessage():
                return record.getMessage()
        await asyncio.sleep(0.02)
    raise AssertionError(f"no access log line with {fragment!r}: {[r.getMessage() for r in caplog.records]}")


def assert_no_errors(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not errors, [(r.name, r.getMessage()) for r in errors]


HALF_BODIES = {
    # Content-Length promises 1000 bytes; 20 arrive.
    "content-length": b'Content-Length: 1000\r\n\r\n{"AuthorUsername": "a',
    # A chunk announced as 0x40 bytes, cut short.
    "chunked": b'Transfer-Encoding: chunked\r\n\r\n40\r\n{"AuthorUsername": "a',
}


@pytest.mark.parametrize("close", ["fin", "rst"])
@pytest.mark.parametrize("body", list(HALF_BODIES))
async def test_a_body_that_stops_halfway_is_a_client_disconnect(
    api_server: Served, caplog: pytest.LogCaptureFixture, body: str, close: str
) -> None:
    caplog.set_level(logging.INFO)
    _, writer = await asyncio.open_connection(api_server.host, api_server.port)
    writer.write(b"POST /messages HTTP/1.1\r\nHost: test\r\n" + HALF_BODIES[body])
    await writer.drain()
    await asyncio.sleep(0.2)  # the handler is now waiting for the rest
    if close == "rst":
        reset(writer)
    else:
        writer.close()
    line = await wait_for_access_line(caplog, '"POST /messages" 499')
    assert " 500 " not in line
    said = [r for r in caplog.records if "closed the connection first" in r.getMessage()]
    assert said and all(r.levelno == logging.INFO for r in said)
    assert_no_errors(caplog)


async def test_a_stream_dropped_after_a_stall_is_not_an_error(
    api_server: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    sock = socket.socket()
    # A tiny receive window, never read: the server's writes back up as with a stalled client.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (api_server.host, api_server.port))
    _, writer = await asyncio.open_connection(sock=sock)
    writer.write(b"GET /messages/stream HTTP/1.1\r\nHost: test\r\n\r\n")
    await writer.drain()
    url = f"http://{api_server.host}:{api_server.port}/messages"
    text = "x" * 3000
    async with ClientSession() as client:
        for number in range(20):
            message = {"AuthorUsername": f"u{number}", "Text": text}
            await expect_json(await client.post(url, json=message), 201)
        reset(writer)
        # More messages after the drop: the server writes to a dead connection.
        for number in range(5):
            await expect_json(await client.post(url, json={"AuthorUsername": "late", "Text": text}), 201)
    await wait_for_access_line(caplog, "GET /messages/stream")
    assert_no_errors(caplog)
