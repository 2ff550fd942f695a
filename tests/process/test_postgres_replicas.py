"""Three api processes on one PostgreSQL: one chat, whichever replica a client reaches.

Live delivery across replicas, SIGKILL of a replica under writers spread over all
three, and PostgreSQL itself stopped under load. The delivery figure printed here
is a measurement for the record; the test asserts only what must hold on any machine.
"""

from __future__ import annotations

import http.client
import json
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Self

import pytest

from tests.process.test_api_durability import Writers, post, readyz
from tests.support.postgres import PASSWORD, PostgresServer, wait_for_server
from tests.support.processes import REPO, RunningRole, free_port, role_env, running_role

pytestmark = pytest.mark.process

REPLICAS = 3


@contextmanager
def api_replicas(tmp_path: Path, url: str, count: int = REPLICAS) -> Iterator[list[RunningRole]]:
    with ExitStack() as stack:
        env = {"API_DATABASE_URL": url, "API_DATABASE_POOL_SIZE": "4"}
        yield [stack.enter_context(running_role("api", tmp_path, env=env)) for _ in range(count)]


class StreamReader:
    """An api's /messages/stream read in a thread, the way EventSource reads it: after a
    break it reconnects with Last-Event-ID. Remembers each message event and when it came."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.received: list[tuple[int, str, float]] = []
        self.connections = 0
        self.hello = threading.Event()
        self._last_id: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        assert self.hello.wait(10), "the stream did not say hello"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(25)

    def ids(self) -> list[int]:
        return [message_id for message_id, _, _ in self.received]

    def _run(self) -> None:
        while not self._stop.is_set():
            headers = {} if self._last_id is None else {"Last-Event-ID": str(self._last_id)}
            request = urllib.request.Request(self.url + "/messages/stream", headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=20) as response:
                    self.connections += 1
                    self._read(response)
            except (OSError, urllib.error.HTTPError):
                time.sleep(0.2)

    def _read(self, response: http.client.HTTPResponse) -> None:
        event, data, event_id = "", "", ""
        while not self._stop.is_set():
            line = response.readline()
            if not line:
                return
            text = line.decode().rstrip("\n")
            if text.startswith("event: "):
                event = text[7:]
            elif text.startswith("data: "):
                data = text[6:]
            elif text.startswith("id: "):
                event_id = text[4:]
            elif not text:
                if event == "message":
                    message = json.loads(data)
                    self.received.append((message["id"], message["Text"], time.monotonic()))
                if event_id:
                    self._last_id = int(event_id)
                if event == "hello":
                    self.hello.set()
                event, data, event_id = "", "", ""


def stored_texts(server: PostgresServer, database: str) -> Counter[str]:
    return Counter(server.psql(database, "SELECT text FROM messages"))


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_message_posted_to_one_replica_reaches_a_stream_on_another(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.url(postgres_server.create_database())
    with api_replicas(tmp_path, url) as apis, StreamReader(apis[2].url) as stream:
        sent: dict[str, float] = {}
        for number in range(200):
            text = f"across {number}"
            sent[text] = time.monotonic()
            assert post(apis[0].url, text) == 201
            time.sleep(0.01)
        assert wait_until(lambda: len(stream.received) >= 200, 10), len(stream.received)
        latencies = sorted((received - sent[text]) * 1000 for _, text, received in stream.received)
        ids = stream.ids()
    assert ids == sorted(ids) and len(set(ids)) == 200
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(
        f"\ndelivery api 1 -> stream on api 3, from sending the POST, over {len(latencies)} messages: "
        f"median {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms, max {latencies[-1]:.1f} ms"
    )
    # The goal is p99 < 100 ms (bench-like figure above); a loaded CI machine gets slack.
    assert p99 < 1000


def test_sigkill_of_one_replica_under_sixteen_writers_loses_and_duplicates_nothing(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    database = postgres_server.create_database()
    with api_replicas(tmp_path, postgres_server.url(database)) as apis:
        writers = [Writers(api.url, count, f"api{n}") for n, (api, count) in enumerate(zip(apis, (6, 5, 5)))]
        with ExitStack() as stack:
            for group in writers:
                stack.enter_context(group)
            time.sleep(1.0)
            apis[1].process.kill()  # SIGKILL, with writes in flight
            apis[1].process.wait()
            time.sleep(1.0)
    acknowledged = [text for group in writers for text in group.acknowledged]
    assert all(group.statuses[201] > 0 for group in writers), [group.statuses for group in writers]
    stored = stored_texts(postgres_server, database)
    assert not [text for text in acknowledged if stored[text] != 1]
    assert not [text for text, times in stored.items() if times > 1]


def test_postgres_stopped_under_load_gives_503s_then_recovers_without_restart(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    database = postgres_server.create_database()
    with api_replicas(tmp_path, postgres_server.url(database)) as apis, StreamReader(apis[2].url) as stream:
        loads = [Writers(api.url, 4, f"api{n}") for n, api in enumerate(apis[:2])]
        with ExitStack() as stack:
            for load in loads:
                stack.enter_context(load)
            time.sleep(1.0)
            postgres_server.stop("fast")
            try:
                time.sleep(2.0)
                readiness_during = [readyz(api.url) for api in apis]
                time.sleep(3.0)
            finally:
                postgres_server.start()
            wait_for_server(postgres_server)
            # Back without a restart: writes succeed again, readiness follows.
            assert wait_until(lambda: all(post(api.url, "after the outage") == 201 for api in apis), 15)
            time.sleep(1.0)
        assert wait_until(lambda: all(readyz(api.url) == 200 for api in apis), 15)
        statuses = sum((load.statuses for load in loads), Counter[int]())
        assert readiness_during == [503] * REPLICAS
        assert statuses[503] > 0 and statuses[201] > 0, statuses
        assert set(statuses) <= {201, 503}, statuses
        stored = stored_texts(postgres_server, database)
        acknowledged = [text for load in loads for text in load.acknowledged]
        assert not [text for text in acknowledged if stored[text] != 1]
        # The stream on api 3 was open through the outage: it has every message, once, in order.
        total = sum(stored.values())
        assert wait_until(lambda: len(stream.received) >= total, 10), (len(stream.received), total)
        assert Counter(text for _, text, _ in stream.received) == stored
        assert stream.ids() == sorted(stream.ids())
        assert all(api.process.poll() is None for api in apis)


@pytest.mark.parametrize("role, variable", [("api", "API_DATABASE_URL"), ("crawler", "CRAWLER_DATABASE_URL")])
@pytest.mark.parametrize(
    "mangle, status",
    [
        # the password is wrong: the server refuses; the line names the variable, masked
        (lambda url: url.replace(PASSWORD, "wrong-pw"), 1),
        # nothing listens on that port
        (lambda url: url.replace(url.split(":")[-1].split("/")[0], "1"), 1),
        # not a PostgreSQL URL at all: refused as a setting, and still masked
        (lambda url: url.replace("postgresql://", "mysql://").replace(PASSWORD, "wrong-pw"), 2),
    ],
)
def test_an_unusable_database_at_start_is_one_masked_line_and_an_exit(
    postgres_server: PostgresServer, role: str, variable: str, mangle: Callable[[str], str], status: int
) -> None:
    url = mangle(postgres_server.url("postgres"))
    result = subprocess.run(
        [sys.executable, "-m", "synergychat", "--role", role],
        cwd=REPO,
        env=role_env({variable: url, f"{role.upper()}_PORT": str(free_port())}),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == status, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert f"{variable}=" in last and ":***@" in last, last
    assert "wrong-pw" not in result.stderr and PASSWORD not in result.stderr
