"""Stopping answers the connections the kernel had completed but the server had not yet
accepted: closing a listener resets those, and a proxy that already sent a POST down one
can't resend it (the rolling restart behind nginx got a 502 for it)."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web

from synergychat.event_loop import EventLoopName, loop_factory
from synergychat.server import ChatAppRunner

WAITING = 20


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


# On both loops a role can run on (their servers differ: uvloop's is no asyncio.Server).
@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_connections_waiting_at_the_listener_are_answered_when_stopping(loop_name: EventLoopName) -> None:
    with asyncio.Runner(loop_factory=loop_factory(loop_name)) as runner:
        answers = runner.run(answers_after_stopping_with_waiting_connections(loop_name))
    assert all(answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"hello") for answer in answers), (
        answers
    )


async def answers_after_stopping_with_waiting_connections(loop_name: EventLoopName) -> list[bytes]:
    assert type(asyncio.get_running_loop()).__module__.startswith(loop_name)
    app = web.Application()
    app.router.add_post("/messages", hello)
    runner = ChatAppRunner(app, max_connections=64, shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]

    # Blocking connects and sends from the loop's own thread: the kernel completes each
    # connection, and the loop never gets the chance to accept one before the shutdown.
    clients = []
    for _ in range(WAITING):
        client = socket.create_connection(("127.0.0.1", port), timeout=5)
        client.sendall(b"POST /messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        clients.append(client)

    await runner.cleanup()

    answers = []
    for client in clients:
        with client:
            received = b""
            try:
                while chunk := client.recv(65536):
                    received += chunk
            except ConnectionResetError:
                received += b"<reset>"
            answers.append(received)
    return answers
