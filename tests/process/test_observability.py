"""Metrics, JSON logs and request ids, as an operator sees them from real processes.

Each role's ``/metrics`` is scraped and parsed the way Prometheus parses it; the
numbers must move with what the process does. With ``LOG_FORMAT=json`` every line
the process writes is one JSON object, and an ``X-Request-ID`` sent to the api comes
back in the response and shows in the crawler's log line for the call it caused.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.process.test_crawler_processes import crawler_env, fake_gutendex_thread, wait_for_status
from tests.support.processes import REPO, free_port, role_env, running_role

pytestmark = pytest.mark.process

HISTOGRAM = "synergychat_http_request_duration_seconds"
API_METRICS = {"synergychat_messages_stored", "synergychat_stream_clients"}
CRAWLER_METRICS = {
    "synergychat_crawler_books_counted",
    "synergychat_crawler_books_skipped",
    "synergychat_crawler_catalogue_errors",
    "synergychat_crawler_last_success_timestamp_seconds",
}
ROLE_METRICS = {
    "web": {HISTOGRAM},
    "api": {HISTOGRAM} | API_METRICS,
    "crawler": {HISTOGRAM} | CRAWLER_METRICS,
    "all": {HISTOGRAM} | API_METRICS | CRAWLER_METRICS,
}
# Nothing answers on purpose: the crawler's catalogue errors count up.
DEAD_CATALOGUE = {"CRAWLER_SOURCE_URL": "http://127.0.0.1:9", "CRAWLER_DELAY_SECONDS": "0"}


def request(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode() if body is not None else None
    sent = {"Content-Type": "application/json", **(headers or {})}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, data=data, method=method, headers=sent), timeout=10
        ) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


class Scrape:
    """One ``GET /metrics``, parsed by prometheus-client's own parser."""

    def __init__(self, base_url: str) -> None:
        status, headers, body = request("GET", base_url + "/metrics")
        assert status == 200, body
        assert headers["Content-Type"].startswith("text/plain")
        self.families = {family.name: family for family in text_string_to_metric_families(body.decode())}

    def names(self) -> set[str]:
        # In the text format a counter's or histogram's creation time is a family of its own.
        return {
            name
            for name in self.families
            if name.startswith("synergychat_") and not name.endswith("_created")
        }

    def value(self, sample_name: str, **labels: str) -> float:
        """The sum of the samples called ``sample_name`` whose labels include ``labels``."""
        family_name = sample_name.removesuffix("_total").removesuffix("_count").removesuffix("_bucket")
        family = self.families[family_name]
        return sum(
            sample.value
            for sample in family.samples
            if sample.name == sample_name and labels.items() <= sample.labels.items()
        )


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.1)


ROLE_SETUPS = {
    # role: (environment, the path polled until it answers, a route of the role to request)
    "web": ({}, "/healthz", "/"),
    "api": ({}, "/healthz", "/messages"),
    "crawler": (DEAD_CATALOGUE, "/healthz", "/status"),
    "all": (DEAD_CATALOGUE, "/api/healthz", "/api/messages"),
}


@pytest.mark.parametrize("role", ["web", "api", "crawler", "all"])
def test_each_role_exports_its_metrics_and_counts_requests_by_route(role: str, tmp_path: Path) -> None:
    env, wait_path, route_path = ROLE_SETUPS[role]
    with running_role(role, tmp_path, env, wait_path=wait_path) as process:
        before = Scrape(process.url)
        # A web process says nothing about messages or the crawl: an alert on the
        # crawler's last success must not fire for it.
        assert before.names() == ROLE_METRICS[role]
        part = "api" if role == "all" else role
        route = route_path.removeprefix("/api") if role == "all" else route_path
        for _ in range(3):
            assert request("GET", process.url + route_path)[0] == 200
        assert request("GET", process.url + "/no/such/path")[0] == 404
        after = Scrape(process.url)
        labels = {"role": part, "route": route, "method": "GET", "status": "200"}
        assert after.value(HISTOGRAM + "_count", **labels) == before.value(HISTOGRAM + "_count", **labels) + 3
        # The route label is the route, never the raw path: unknown paths share one label.
        assert after.value(HISTOGRAM + "_count", route="unmatched", status="404") >= 1
        raw_paths = {sample.labels.get("route") for sample in after.families[HISTOGRAM].samples}
        assert "/no/such/path" not in raw_paths
        # Only one endpoint per process: under `all` the parts' prefixes have none.
        if role == "all":
            assert request("GET", process.url + "/api/metrics")[0] == 404
            assert request("GET", process.url + "/crawler/metrics")[0] == 404
        if role in ("crawler", "all"):
            eventually(lambda: Scrape(process.url).value("synergychat_crawler_catalogue_errors_total") >= 1)


def test_messages_stored_and_stream_clients_follow_the_api(tmp_path: Path) -> None:
    env = {"API_DB_FILEPATH": str(tmp_path / "messages.db")}
    with running_role("api", tmp_path, env) as api:
        assert Scrape(api.url).value("synergychat_messages_stored_total") == 0
        for text in ("one", "two"):
            status, _, _ = request("POST", api.url + "/messages", {"AuthorUsername": "a", "Text": text})
            assert status == 201
        assert Scrape(api.url).value("synergychat_messages_stored_total") == 2

        streams = [urllib.request.urlopen(api.url + "/messages/stream", timeout=10) for _ in range(2)]
        try:
            eventually(lambda: Scrape(api.url).value("synergychat_stream_clients") == 2)
        finally:
            for stream in streams:
                stream.close()
        # A closed stream is let go within the api's sweep (about a second).
        eventually(lambda: Scrape(api.url).value("synergychat_stream_clients") == 0)


def json_lines(log: str) -> list[dict[str, Any]]:
    lines = [line for line in log.splitlines() if line.strip()]
    assert lines
    # Every line is one object: a line that isn't JSON fails here, naming itself.
    return [json.loads(line) for line in lines]


def access_lines(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [record for record in records if record["logger"] == "synergychat.access"]


def test_json_logs_one_object_a_line_with_access_fields_and_quiet_probes(tmp_path: Path) -> None:
    env = {"LOG_FORMAT": "json", "API_DB_FILEPATH": str(tmp_path / "messages.db")}
    with running_role("api", tmp_path, env) as api:
        status, headers, _ = request("POST", api.url + "/messages", {"AuthorUsername": "a", "Text": "hi"})
        assert status == 201
        made_id = headers["X-Request-ID"]
        # Not acceptable as it is (a space, a newline would forge a line): a new id instead.
        status, headers, _ = request("GET", api.url + "/messages", headers={"X-Request-ID": "a b"})
        assert status == 200 and headers["X-Request-ID"] not in ("a b", made_id)
        for path in ("/healthz", "/readyz", "/metrics"):
            request("GET", api.url + path)
        assert api.stop() == 0
        records = json_lines(api.log())
    for record in records:
        assert {"time", "level", "logger", "message", "role"} <= set(record), record
        assert record["role"] == "api"
    (post, *_) = [line for line in access_lines(records) if line["method"] == "POST"]
    assert post["path"] == "/messages" and post["status"] == 201
    assert post["request_id"] == made_id
    assert 0 < post["duration"] < 10  # seconds
    assert post["level"] == "INFO"
    # Probes and scrapes come every few seconds, forever: not at INFO.
    assert not [line for line in access_lines(records) if line["path"] in ("/healthz", "/readyz", "/metrics")]
    # Lines written outside any request carry no id.
    (starting,) = [record for record in records if record["message"].startswith("starting role api")]
    assert "request_id" not in starting


def test_log_level_debug_shows_probes_and_warning_hides_access_lines(tmp_path: Path) -> None:
    with running_role("api", tmp_path, {"LOG_FORMAT": "json", "LOG_LEVEL": "debug"}) as api:
        request("GET", api.url + "/healthz")
        api.stop()
        probes = [line for line in access_lines(json_lines(api.log())) if line["path"] == "/healthz"]
        assert probes and all(line["level"] == "DEBUG" for line in probes)
    with running_role("api", tmp_path, {"LOG_FORMAT": "json", "LOG_LEVEL": "WARNING"}) as api:
        request("GET", api.url + "/messages")
        api.stop()
        assert not access_lines(json_lines(api.log()))


def test_a_process_that_cannot_start_says_why_in_json_too(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    env = {"LOG_FORMAT": "json", "API_DB_FILEPATH": str(blocker / "messages.db")}
    result = subprocess.run(
        [sys.executable, "-m", "synergychat", "--role", "api"],
        check=False,
        cwd=REPO,
        env=role_env({"API_PORT": str(free_port()), **env}),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    records = json_lines(result.stdout + result.stderr)
    assert records[-1]["level"] == "CRITICAL"
    assert records[-1]["message"].startswith("API_DB_FILEPATH=") and records[-1]["role"] == "api"


def test_a_request_id_reaches_the_crawler_through_the_api(tmp_path: Path) -> None:
    with fake_gutendex_thread() as gutendex:
        env = {**crawler_env(gutendex, tmp_path / "crawler-data"), "LOG_FORMAT": "json"}
        with running_role("crawler", tmp_path, env) as crawler:
            wait_for_status(f"{crawler.url}/status", lambda s: s["state"] == "waiting")
            scrape = Scrape(crawler.url)
            assert scrape.value("synergychat_crawler_books_counted_total") == 7
            assert scrape.value("synergychat_crawler_books_skipped_total") == 1
            assert scrape.value("synergychat_crawler_last_success_timestamp_seconds") > time.time() - 120

            api_env = {"CRAWLER_BASE_URL": crawler.url, "LOG_FORMAT": "json"}
            with running_role("api", tmp_path, api_env) as api:
                status, headers, body = request(
                    "POST",
                    api.url + "/messages",
                    {"AuthorUsername": "a", "Text": "/stats keywords=love"},
                    headers={"X-Request-ID": "trace-4f2a.9"},
                )
                assert status == 201, body
                assert json.loads(body)[-1]["AuthorUsername"] == "crawler-bot"
                assert headers["X-Request-ID"] == "trace-4f2a.9"
            assert crawler.stop() == 0
            calls = [
                line
                for line in access_lines(json_lines(crawler.log()))
                if line.get("request_id") == "trace-4f2a.9"
            ]
            # The bot's question (totals), and its look at the crawl's progress, both under the one id.
            assert "/stats/totals" in {line["path"] for line in calls}, calls

        # A restart: the last success comes from the count database, not from zero.
        last_success = scrape.value("synergychat_crawler_last_success_timestamp_seconds")
        with running_role("crawler", tmp_path, env) as crawler:
            eventually(
                lambda: (
                    abs(
                        Scrape(crawler.url).value("synergychat_crawler_last_success_timestamp_seconds")
                        - last_success
                    )
                    < 1
                )
            )


def test_the_dashboard_asks_only_for_metrics_the_process_exports(tmp_path: Path) -> None:
    dashboard = json.loads((REPO / "docs" / "grafana-dashboard.json").read_text())
    queries = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", ())
        if panel["type"] != "row"
    ]
    asked = {name for query in queries for name in re.findall(r"\bsynergychat_[a-z_]+", query)}
    with running_role("all", tmp_path, DEAD_CATALOGUE, wait_path="/api/healthz") as process:
        request("GET", process.url + "/api/messages")
        exported = {
            sample.name for family in Scrape(process.url).families.values() for sample in family.samples
        }
    assert asked and asked <= exported, sorted(asked - exported)
    # Every panel that draws something asks for something.
    assert all(panel.get("targets") for panel in dashboard["panels"] if panel["type"] != "row")
    # Everything the issue asks to see is on it.
    assert {
        "synergychat_http_request_duration_seconds_count",
        "synergychat_http_request_duration_seconds_bucket",
        "synergychat_messages_stored_total",
        "synergychat_stream_clients",
        "synergychat_crawler_books_counted_total",
        "synergychat_crawler_books_skipped_total",
        "synergychat_crawler_catalogue_errors_total",
        "synergychat_crawler_last_success_timestamp_seconds",
    } <= asked
