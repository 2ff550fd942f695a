"""ROLE=loadgen against real roles: what it reports is what the api stored and delivered.

The api runs as its own process; the load generator runs as another, and the
test watches the api's stream itself, so the generator's numbers are checked
against two independent witnesses (the database and a stream of our own).
"""

from __future__ import annotations

import json
import math
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from synergychat.loadgen.measure import Latencies
from tests.support.processes import REPO, free_port, role_env, running_role, wait_until_up
from tests.support.threaded_http import serving

pytestmark = pytest.mark.process

# Quick, but still paced like people: 20 people at one message every 2 s each.
FAST = {"LOADGEN_SPAWN_RATE": "20", "LOADGEN_POST_INTERVAL_SECONDS": "2", "LOADGEN_REPORT_SECONDS": "2"}


def loadgen_env(target: str, port: int, **env: str) -> dict[str, str]:
    return role_env({"LOADGEN_TARGET_URL": target, "LOADGEN_PORT": str(port), **FAST, **env})


def start_loadgen(env: dict[str, str], tmp_path: Path) -> subprocess.Popen[str]:
    with open(tmp_path / "loadgen.log", "w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "synergychat", "--role", "loadgen"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )


def finish(process: subprocess.Popen[str], tmp_path: Path, timeout: float) -> tuple[int, dict[str, Any]]:
    try:
        stdout, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError(
            f"loadgen still running after {timeout} s:\n{(tmp_path / 'loadgen.log').read_text()}"
        ) from None
    lines = stdout.strip().splitlines()
    assert lines, (tmp_path / "loadgen.log").read_text()
    return process.returncode, json.loads(lines[-1])


def all_messages(api_url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(api_url + "/messages?limit=1000", timeout=10) as response:
        messages: list[dict[str, Any]] = json.loads(response.read())
        return messages


def metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        sample.name + json.dumps(sample.labels, sort_keys=True): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@contextmanager
def watched_stream(api_url: str) -> Iterator[list[dict[str, Any]]]:
    """Our own stream on the api: every message event it shows, until the api stops."""
    seen: list[dict[str, Any]] = []
    response = urllib.request.urlopen(api_url + "/messages/stream", timeout=60)

    def read() -> None:
        event = None
        try:
            for raw in response:
                line = raw.decode().rstrip("\n")
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event == "message":
                    seen.append(json.loads(line.split(":", 1)[1]))
        except (OSError, ValueError, AttributeError):
            pass  # closed under our feet when the test is done with it (http.client says so in any of these)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield seen
    finally:
        response.close()


def test_twenty_people_for_ten_seconds_agree_with_what_the_api_stored(tmp_path: Path) -> None:
    port = free_port()
    with (
        running_role("api", tmp_path, env={"API_DB_FILEPATH": str(tmp_path / "m.db")}) as api,
        watched_stream(api.url) as witnessed,
    ):
        process = start_loadgen(
            loadgen_env(api.url, port, LOADGEN_USERS="20", LOADGEN_DURATION_SECONDS="10"), tmp_path
        )
        wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
        time.sleep(6)
        midway = metrics(port)
        status, report = finish(process, tmp_path, timeout=60)
        time.sleep(0.5)
        stored = all_messages(api.url)
    log = (tmp_path / "loadgen.log").read_text()
    assert status == 0, log

    # First: a failed request explains any count below that is off.
    assert report["error_rate"] == 0 and report["failures"] == {}, report["failures"]
    ours = [m for m in stored if m["AuthorUsername"].startswith("loadgen-")]
    bot = [m for m in stored if m["AuthorUsername"] == "crawler-bot"]
    requests = report["requests"]
    # What it says it sent is what the api stored: each 201 one message, each /stats one bot reply too.
    assert report["people"] == 20 and len({m["AuthorUsername"] for m in ours}) <= 20
    assert report["messages_sent"] == len(ours) == requests["post"]["ok"] + requests["stats"]["ok"]
    assert len(bot) == requests["stats"]["ok"] == report["bot_replies_seen"]
    assert len(ours) >= 40, f"20 people at one message per 2 s for 10 s sent only {len(ours)}"
    # Delivered to the other people's streams: at most 19 each, all of them once every stream was open.
    deliveries = report["deliveries"]
    assert deliveries["missed"] == 0
    assert 0.9 * 19 * len(ours) <= deliveries["delivered"] <= 19 * len(ours)
    assert deliveries["p50_ms"] <= deliveries["p95_ms"] <= deliveries["p99_ms"] <= deliveries["max_ms"]
    assert requests["stream"]["ok"] == 20 and requests["load"]["ok"] == 20
    # Our own stream saw every one of them, in the order the api stored them.
    assert [m["id"] for m in witnessed if m["AuthorUsername"] != "crawler-bot"] == [m["id"] for m in ours]
    # Percentiles in the log every report interval, and a summary at the end.
    assert log.count("messages sent (p50") >= 3 and "summary:" in log and "PASSED" in log
    # /metrics midway: Prometheus text with the same kinds of numbers.
    assert midway["loadgen_people{}"] == 20 and midway["loadgen_streams_open{}"] == 20
    assert midway['loadgen_requests_total{"kind": "post"}'] > 0
    assert midway["loadgen_delivery_seconds_count{}"] > 0
    assert 'loadgen_window_seconds{"measure": "post", "quantile": "0.95"}' in midway


def test_through_the_page_people_come_and_go(tmp_path: Path) -> None:
    # ROLE=all serves the page with API_URL=/api: the base is /api/, as the browser resolves it.
    # Short visits: whoever leaves is replaced by someone who loads the page again.
    port = free_port()
    with running_role(
        "all", tmp_path, env={"CRAWLER_SOURCE_URL": "http://127.0.0.1:9"}, wait_path="/"
    ) as app:
        process = start_loadgen(
            loadgen_env(
                app.url + "/",
                port,
                LOADGEN_USERS="4",
                LOADGEN_DURATION_SECONDS="8",
                LOADGEN_VISIT_SECONDS="2",
            ),
            tmp_path,
        )
        status, report = finish(process, tmp_path, timeout=60)
        stored = all_messages(app.url + "/api")
    assert status == 0, (tmp_path / "loadgen.log").read_text()
    assert report["api"] == app.url + "/api/"
    assert report["people"] > 4 and report["users"] == 4
    assert report["requests"]["page"]["ok"] == report["requests"]["load"]["ok"] == report["people"]
    assert (
        report["messages_sent"] == len([m for m in stored if m["AuthorUsername"].startswith("loadgen-")]) > 0
    )
    # Those who left are not expected to see what was said after they did.
    assert report["deliveries"]["missed"] == 0 and report["error_rate"] == 0


def test_a_dead_api_is_reported_and_exits_1(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    process = start_loadgen(loadgen_env(dead, free_port(), LOADGEN_DURATION_SECONDS="4"), tmp_path)
    started = time.monotonic()
    status, report = finish(process, tmp_path, timeout=30)
    assert status == 1
    assert time.monotonic() - started < 15
    assert report["passed"] is False and report["error_rate"] == 1
    assert report["failures"].get("find cannot connect", 0) >= 1
    assert "nothing answered at" in (tmp_path / "loadgen.log").read_text()


def test_a_page_whose_api_is_down_is_reported_and_exits_1(tmp_path: Path) -> None:
    # The page answers, the api it names does not: every person's requests fail, none hangs.
    dead_api = f"http://127.0.0.1:{free_port()}"
    with running_role("web", tmp_path, env={"API_URL": dead_api}, wait_path="/") as web:
        process = start_loadgen(
            loadgen_env(web.url + "/", free_port(), LOADGEN_USERS="5", LOADGEN_DURATION_SECONDS="4"), tmp_path
        )
        status, report = finish(process, tmp_path, timeout=40)
    assert status == 1
    assert report["api"] == dead_api + "/"
    assert report["messages_sent"] == 0 and report["requests"]["load"]["failed"] == 5
    assert report["failures"]["load cannot connect"] == 5 and report["failures"]["stream cannot connect"] >= 5
    assert "FAILED" in (tmp_path / "loadgen.log").read_text()


def test_sigterm_ends_an_endless_run_with_a_summary(tmp_path: Path) -> None:
    port = free_port()
    with running_role("api", tmp_path) as api:
        process = start_loadgen(loadgen_env(api.url, port, LOADGEN_USERS="3"), tmp_path)
        wait_until_up(f"http://127.0.0.1:{port}/readyz", process)
        time.sleep(3)
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        status, report = finish(process, tmp_path, timeout=30)
    assert status == 0, (tmp_path / "loadgen.log").read_text()
    assert time.monotonic() - started < 12
    assert report["people"] == 3 and report["requests"]["stream"]["ok"] == 3


class SilentStreamApi(BaseHTTPRequestHandler):
    """An api that stores every message but never pushes one: a broken push channel."""

    lock = threading.Lock()
    last_id = 0

    def do_GET(self) -> None:
        if self.path.startswith("/messages/stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.write(b'event: hello\ndata: {"history": "h", "last_id": 0}\n\n')
            try:
                while True:
                    self.wfile.write(b": ping\n\n")
                    self.wfile.flush()
                    time.sleep(0.5)
            except OSError:
                return
        self.reply(200, [] if self.path.startswith("/messages") else {"service": "silent"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.lock:
            SilentStreamApi.last_id += 1
            message = {"id": SilentStreamApi.last_id, **body}
        self.reply(201, [message])

    def reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def test_messages_that_never_reach_the_others_are_missed_and_fail_the_run(tmp_path: Path) -> None:
    # Every request succeeds, yet nobody sees anything: only the delivery check can tell.
    with serving(SilentStreamApi) as api_url:
        process = start_loadgen(
            loadgen_env(api_url, free_port(), LOADGEN_USERS="3", LOADGEN_DURATION_SECONDS="5"), tmp_path
        )
        status, report = finish(process, tmp_path, timeout=60)
    assert status == 1
    assert report["error_rate"] == 0 and report["messages_sent"] > 0
    assert report["deliveries"]["delivered"] == 0 and report["deliveries"]["missed"] > 0
    assert report["missed_rate"] == 1 and "deliveries were missed" in report["verdict"]


def test_percentiles_are_within_one_percent() -> None:
    # The report's percentiles come from 1 %-wide buckets, not from every sample.
    rng = random.Random(7)
    samples = [rng.lognormvariate(-4, 1.2) for _ in range(20_000)]
    latencies = Latencies()
    for sample in samples:
        latencies.add(sample)
    ordered = sorted(samples)
    for q in (0.5, 0.95, 0.99):
        exact = ordered[math.ceil(q * len(ordered)) - 1]
        estimate = latencies.quantile(q)
        assert estimate is not None and exact <= estimate <= exact * 1.0101, q
    assert latencies.quantile(1.0) == max(samples) and latencies.count == len(samples)


@pytest.mark.parametrize(
    "env, line",
    [
        ({}, "synergychat: invalid setting LOADGEN_TARGET_URL: Field required"),
        ({"LOADGEN_TARGET_URL": "api:8080"}, "synergychat: invalid setting LOADGEN_TARGET_URL='api:8080'"),
        (
            {"LOADGEN_TARGET_URL": "http://api", "LOADGEN_USERS": "0"},
            "synergychat: invalid setting LOADGEN_USERS='0'",
        ),
        (
            {"LOADGEN_TARGET_URL": "http://api", "LOADGEN_MAX_ERROR_RATE": "2"},
            "synergychat: invalid setting LOADGEN_MAX_ERROR_RATE='2'",
        ),
    ],
)
def test_bad_settings_stop_with_one_line(env: dict[str, str], line: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "synergychat", "--role", "loadgen"],
        cwd=REPO,
        env=role_env(env),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,  # the exit status is checked below
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(line), result.stderr
