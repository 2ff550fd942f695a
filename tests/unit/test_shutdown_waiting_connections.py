"""Stopping answers the connections the kernel had completed but the server had not yet
accepted: closing a listener resets those, and a proxy that already sent a POST down one
can't resend it (the rolling restart behind nginx got a 502 for it)."""

from __future__ import annotations

import socket

from aiohttp import web

from synergychat.server import ChatAppRunner

WAITING = 20


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


async def test_connections_waiting_at_the_listener_are_answered_when_stopping() -> None:
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
    assert all(answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"hello") for answer in answers), (
        answers
    )
