"""The real entry point as a user runs it: settings errors, SIGTERM, kill -9, restart."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import REPO, free_port, role_env, running_role
from tests.support.threaded_http import serving

pytestmark = pytest.mark.process


def http_json(method: str, url: str, body: Any = None, timeout: float = 10) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def run_once(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "synergychat", *args],
        cwd=REPO,
        env=role_env(env),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,  # the exit status is checked below
    )


@pytest.mark.parametrize(
    "args, env, variable",
    [
        (["--role", "api"], {"API_PORT": "abc"}, "API_PORT='abc'"),
        (["--role", "web"], {"WEB_PORT": "70000"}, "WEB_PORT='70000'"),
        (["--role", "crawler"], {"CRAWLER_DELAY_SECONDS": "-1"}, "CRAWLER_DELAY_SECONDS='-1'"),
        (["--role", "api"], {"CRAWLER_BASE_URL": "crawler:8080"}, "CRAWLER_BASE_URL='crawler:8080'"),
        (["--role", "api"], {"CRAWLER_BASE_URL": "http://[::1"}, "CRAWLER_BASE_URL='http://[::1'"),
        (["--role", "web"], {"API_URL": "http://host:99999"}, "API_URL='http://host:99999'"),
        (["--role", "chef"], {}, "unknown role 'chef' (--role)"),
        ([], {"ROLE": "database"}, "unknown role 'database' (ROLE)"),
    ],
)
def test_bad_settings_stop_with_one_line_and_status_2(
    args: list[str], env: dict[str, str], variable: str
) -> None:
    result = run_once(args, env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0] and "Traceback" not in result.stderr


def test_role_from_env_and_flag_overrides(tmp_path: Path) -> None:
    with running_role("api", tmp_path, env={"ROLE": "web"}) as api:
        _, body = http_json("GET", api.url + "/")
        assert body["service"] == "synergychat-api"
    port = free_port()
    with (
        running_role(
            "web", tmp_path, env={"ROLE": "api", "WEB_PORT": str(port)}, port=port, wait_path="/"
        ) as web,
        urllib.request.urlopen(web.url + "/") as response,
    ):
        assert b"synergychat-config" in response.read()


class SlowCrawler(BaseHTTPRequestHandler):
    """A crawler that takes its time: a request is in flight while we send SIGTERM."""

    delay = 2.0

    def do_GET(self) -> None:
        if self.path.startswith("/stats"):
            time.sleep(self.delay)
        body = json.dumps([] if self.path.startswith("/stats") else {"status": "ok"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_sigterm_finishes_the_request_in_flight_and_exits_0(tmp_path: Path) -> None:
    with (
        serving(SlowCrawler) as crawler_url,
        running_role(
            "api", tmp_path, env={"CRAWLER_BASE_URL": crawler_url, "API_DB_FILEPATH": str(tmp_path / "m.db")}
        ) as api,
    ):
        with ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(
                http_json, "POST", api.url + "/messages", {"AuthorUsername": "a", "Text": "/stats"}
            )
            time.sleep(0.7)
            api.process.send_signal(signal.SIGTERM)
            status, page = in_flight.result(timeout=15)
        assert status == 201
        assert page[-1]["AuthorUsername"] == "crawler-bot"
        assert api.process.wait(10) == 0


def test_sigterm_with_open_streams_exits_0_quickly(tmp_path: Path) -> None:
    with running_role(
        "all", tmp_path, env={"CRAWLER_SOURCE_URL": "http://127.0.0.1:9"}, wait_path="/api/healthz"
    ) as app:
        streams = [urllib.request.urlopen(app.url + "/api/messages/stream", timeout=10) for _ in range(3)]
        time.sleep(0.3)
        started = time.monotonic()
        app.process.send_signal(signal.SIGTERM)
        assert app.process.wait(10) == 0
        assert time.monotonic() - started < 5
        for stream in streams:
            stream.close()


def test_kill_9_after_201_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "data" / "messages.sqlite3"
    acknowledged: list[str] = []
    for round_number in range(3):
        with running_role("api", tmp_path, env={"API_DB_FILEPATH": str(db)}) as api:
            for n in range(5):
                text = f"round {round_number} message {n}"
                status, _ = http_json("POST", api.url + "/messages", {"AuthorUsername": "a", "Text": text})
                assert status == 201
                acknowledged.append(text)
            api.process.kill()  # SIGKILL right after the last 201
            api.process.wait()
    with running_role("api", tmp_path, env={"API_DB_FILEPATH": str(db)}) as api:
        status, listed = http_json("GET", api.url + "/messages?limit=1000")
    assert [m["Text"] for m in listed] == acknowledged


def test_concurrent_clients_against_a_real_process_lose_nothing(tmp_path: Path) -> None:
    with running_role("api", tmp_path, env={"API_DB_FILEPATH": str(tmp_path / "m.db")}) as api:

        def post(n: int) -> int:
            return http_json("POST", api.url + "/messages", {"AuthorUsername": f"u{n}", "Text": f"t{n}"})[0]

        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(post, range(300)))
        assert statuses == [201] * 300
        _, listed = http_json("GET", api.url + "/messages?limit=1000")
    assert sorted(m["Text"] for m in listed) == sorted(f"t{n}" for n in range(300))


def test_unopenable_database_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_once(
        ["--role", "api"], {"API_PORT": str(free_port()), "API_DB_FILEPATH": str(blocker / "m.db")}
    )
    assert result.returncode == 1
    assert "synergychat: API_DB_FILEPATH=" in result.stderr and "Traceback" not in result.stderr


def test_port_in_use_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    with running_role("api", tmp_path) as api:
        result = run_once(["--role", "api"], {"API_PORT": str(api.port)})
    assert result.returncode == 1
    assert (
        f"cannot listen on port {api.port} (API_PORT)" in result.stderr and "Traceback" not in result.stderr
    )


def test_a_body_that_never_finishes_is_refused_in_time(tmp_path: Path) -> None:
    # A client that declares 100 bytes and sends 4 must not hold the request forever.
    with (
        running_role("api", tmp_path) as api,
        socket.create_connection(("127.0.0.1", api.port), timeout=20) as sock,
    ):
        sock.sendall(
            b"POST /messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"Au'
        )
        started = time.monotonic()
        answer = sock.recv(4096).decode()
        elapsed = time.monotonic() - started
    assert answer.startswith("HTTP/1.1 408"), answer
    assert "did not arrive within 10 s" in answer
    assert 9 < elapsed < 15
