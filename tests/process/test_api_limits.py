"""What a real api process does at its limits: too many clients, bytes that aren't HTTP."""

from __future__ import annotations

import json
import resource
import socket
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.processes import running_role

pytestmark = pytest.mark.process

OPEN_FILES = 1024


def status_of(sock: socket.socket) -> str:
    """The status line the server sent on ``sock`` so far ('' if nothing, 'closed' if closed)."""
    sock.setblocking(False)
    try:
        data = sock.recv(64)
    except BlockingIOError:
        return ""
    except ConnectionError:
        return "closed"
    return data.split(b"\r\n", 1)[0].decode() if data else "closed"


@contextmanager
def stream_clients(port: int, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections that each ask for the message stream, held open."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, count + 512)), hard))
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(b"GET /messages/stream HTTP/1.1\r\nHost: api\r\n\r\n")
            sockets.append(sock)
        yield sockets
    finally:
        for sock in sockets:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def get_json(url: str, timeout: float = 2.0) -> tuple[int, object, float]:
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, json.loads(response.read()), time.monotonic() - started


def test_twice_the_open_file_limit_in_streams_keeps_probes_and_chat_working(tmp_path: Path) -> None:
    env = {"API_DB_FILEPATH": str(tmp_path / "m.db")}
    with running_role("api", tmp_path, env=env, open_files=OPEN_FILES) as api:
        lines_before = len(api.log().splitlines())
        with stream_clients(api.port, 2 * OPEN_FILES) as clients:
            time.sleep(2)
            # Probes keep answering, fast, however many clients wait.
            for _ in range(5):
                status, body, seconds = get_json(api.url + "/healthz")
                assert (status, body) == (200, {"status": "ok"}) and seconds < 1.0
            # The chat still works, and reaches the streams that were let in.
            request = urllib.request.Request(
                api.url + "/messages",
                data=json.dumps({"AuthorUsername": "ann", "Text": "still here"}).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                assert response.status == 201
            time.sleep(1)
            answers = Counter(status_of(sock) for sock in clients)
            served = answers["HTTP/1.1 200 OK"]
            refused = answers["HTTP/1.1 503 Service Unavailable"]
            # Most were let in or told no; none left the process out of descriptors.
            assert served > OPEN_FILES // 4, answers
            assert served + refused > OPEN_FILES, answers
            log = api.log().splitlines()[lines_before:]
        assert "Too many open files" not in "\n".join(log)
        assert "Traceback" not in "\n".join(log)
        # Refusals are counted and reported now and then, not logged one by one.
        assert len(log) < 100, "\n".join(log[:20])
        streams_left = api.log()
        assert get_json(api.url + "/healthz")[0] == 200
    assert "Traceback" not in streams_left


# Each is what a scanner, a fuzzer or a confused client sends; none is the server's fault.
@pytest.mark.parametrize(
    "raw",
    [
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: api\r\n\r\n",  # a request line past 8 KiB
        b"GET / HTTP/1.1\r\nHo st: api\r\n\r\n",  # a space in a header name
        b"GET / HTTP/1.1\r\nHost: api\r\nX: " + b"b" * 9000 + b"\r\n\r\n",  # a huge header
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,  # TLS to a plain port
        b"POST /messages HTTP/1.1\r\nHost: api\r\nContent-Length: abc\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
    ],
    ids=["long-line", "bad-header-name", "huge-header", "tls-hello", "bad-length", "bad-version"],
)
def test_bytes_that_are_not_http_get_a_json_400_and_no_traceback(tmp_path: Path, raw: bytes) -> None:
    with running_role("api", tmp_path) as api:
        with socket.create_connection(("127.0.0.1", api.port), timeout=5) as sock:
            sock.sendall(raw)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.split(b"\r\n")[0].split(b" ")[1] == b"400", answer[:300]
        assert b"application/json" in head
        assert json.loads(body)["error"].startswith("bad request")
        # The Server header names no software version.
        server = [line for line in head.split(b"\r\n") if line.lower().startswith(b"server:")]
        assert server == [b"Server: synergychat"]
        log = api.log()
    assert "Traceback" not in log and "ERROR" not in log, log
