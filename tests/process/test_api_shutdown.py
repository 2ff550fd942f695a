"""SIGTERM under keep-alive load: every request the api read is answered, and it exits promptly."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.support.processes import running_role

pytestmark = pytest.mark.process


def read_response(sock: socket.socket, buffered: bytes) -> tuple[bytes, bytes]:
    """One HTTP response with a Content-Length: (its head, what came after it)."""
    data = buffered
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionAbortedError("closed before a response")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionAbortedError("closed inside a response")
        rest += chunk
    return head, rest[length:]


def keep_alive_client(port: int, outcomes: list[str], lock: threading.Lock) -> None:
    """Requests back to back on one connection until the server says Connection: close."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    buffered = b""
    try:
        while True:
            sock.sendall(b"GET /messages?limit=5 HTTP/1.1\r\nHost: api\r\n\r\n")
            try:
                head, buffered = read_response(sock, buffered)
            except OSError as exc:
                outcome = f"sent a request, got no answer ({type(exc).__name__})"
                break
            if b"\r\nconnection: close" in head.lower():
                outcome = "answered, then told to close"
                break
    finally:
        sock.close()
    with lock:
        outcomes.append(outcome)


@pytest.mark.parametrize("attempt", range(5))
def test_sigterm_answers_every_request_it_read_and_exits_promptly(tmp_path: Path, attempt: int) -> None:
    with running_role("api", tmp_path, env={"API_DB_FILEPATH": str(tmp_path / "m.db")}) as api:
        outcomes: list[str] = []
        lock = threading.Lock()
        clients = [
            threading.Thread(target=keep_alive_client, args=(api.port, outcomes, lock), daemon=True)
            for _ in range(20)
        ]
        for client in clients:
            client.start()
        time.sleep(0.5 + attempt * 0.1)
        started = time.monotonic()
        api.process.send_signal(signal.SIGTERM)
        status = api.process.wait(timeout=15)
        seconds = time.monotonic() - started
        for client in clients:
            client.join(10)
        log = api.log()
    assert status == 0, log
    assert seconds < 3.0, f"took {seconds:.1f} s to exit"
    assert Counter(outcomes) == {"answered, then told to close": 20}
    assert "Traceback" not in log
