"""compose.scale.yaml with podman-compose: PostgreSQL, three api replicas behind nginx.

The file as shipped, plus a test file adding the fake Gutendex (and, while this
tree's crawler keeps its counts in memory, one crawler instead of two). The test
then uses http://127.0.0.1:PORT/ alone: the chat end to end, then a rolling
restart of the three api containers, one at a time, while a load loop posts and
reads through nginx and a stream follows along. Not one request may fail, every
201 must be stored, and the stream, reconnecting through nginx as a browser does,
must see every message once, in order.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import yaml

from . import test_health_and_lifecycle as lifecycle
from .chat import ChatBrowser, chat_end_to_end
from .conftest import (
    FAKE_GUTENDEX_PORT,
    GUTENDEX_ENV,
    HERE,
    NGINX_IMAGE,
    OWNER,
    REPO,
    compose_up,
    free_port,
    run,
    tool,
    wait_ready,
)
from .test_compose_nginx import run_healthcheck_until_healthy
from .test_scale_overlay import crawler_reads_a_database

API_REPLICAS = ("api1", "api2", "api3")
LOAD_WORKERS = 4


@dataclass
class Stack:
    entry: str
    project: str
    env: dict[str, str]

    def container(self, service: str, number: int = 1) -> str:
        return f"{self.project}_{service}_{number}"


@pytest.fixture
def scale_stack(
    podman_env: dict[str, str], app_image: str, base_image: str, postgres_image: str, tmp_path: Path
) -> Iterator[Stack]:
    crawler: dict[str, object] = {"environment": GUTENDEX_ENV}
    if not crawler_reads_a_database():
        print("the crawler has no CRAWLER_DATABASE_URL in this tree: one crawler, counting in memory")
        crawler["deploy"] = {"replicas": 1}
    test_file = tmp_path / "compose.test.yaml"
    test_file.write_text(
        yaml.safe_dump(
            {
                "services": {
                    "crawler": crawler,
                    "gutendex": {
                        "image": app_image,
                        "entrypoint": ["python3", "/fake/fake_gutendex.py", str(FAKE_GUTENDEX_PORT)],
                        "volumes": [f"{HERE / 'fake_gutendex.py'}:/fake/fake_gutendex.py:ro"],
                    },
                }
            }
        )
    )
    port = free_port()
    env = {
        **podman_env,
        "SYNERGYCHAT_IMAGE": app_image,
        "POSTGRES_IMAGE": postgres_image,
        "POSTGRES_PASSWORD": secrets.token_hex(16),
        "NGINX_IMAGE": NGINX_IMAGE,
        "NGINX_BASE_IMAGE": base_image,
        "NGINX_HOST_IP": "127.0.0.1",
        "HTTP_HOST_PORT": str(port),
    }
    project = f"{OWNER}scale"
    with compose_up(project, (REPO / "compose.scale.yaml", test_file), env, log_lines=30):
        yield Stack(f"http://127.0.0.1:{port}", project, env)


@dataclass
class Load:
    """What the load loop did: each stored message's id, and every request that failed."""

    posted: dict[int, str] = field(default_factory=dict)
    reads: int = 0
    failures: list[str] = field(default_factory=list)
    streamed: list[int] = field(default_factory=list)
    reconnects: int = 0


async def post_and_read(
    session: aiohttp.ClientSession, api: str, load: Load, worker: int, stop: asyncio.Event
) -> None:
    number = 0
    while not stop.is_set():
        number += 1
        text = f"load {worker}-{number} {time.time()}"
        try:
            async with session.post(
                f"{api}messages", json={"AuthorUsername": f"load{worker}", "Text": text}
            ) as response:
                body = await response.read()
                if response.status != 201:
                    load.failures.append(f"POST -> {response.status}: {body[:200]!r}")
                    continue
                (mine,) = [m for m in json.loads(body) if m["Text"] == text]
                load.posted[mine["id"]] = text
            async with session.get(f"{api}messages?limit=10") as response:
                body = await response.read()
                if response.status != 200:
                    load.failures.append(f"GET -> {response.status}: {body[:200]!r}")
                    continue
                load.reads += 1
        except (aiohttp.ClientError, TimeoutError) as error:
            load.failures.append(f"{type(error).__name__}: {error}")


async def follow_stream(
    session: aiohttp.ClientSession, api: str, load: Load, after: int, stop: asyncio.Event
) -> None:
    """Read the push channel as EventSource does: reconnect with Last-Event-ID when it ends."""
    last_id = after
    while not stop.is_set():
        headers = {"Accept": "text/event-stream", "Last-Event-ID": str(last_id)}
        try:
            async with session.get(
                f"{api}messages/stream",
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_read=30),
            ) as response:
                if response.status != 200:
                    load.failures.append(f"stream -> {response.status}")
                    await asyncio.sleep(0.5)
                    continue
                event, event_id = "message", None
                async for raw in response.content:
                    line = raw.decode().rstrip("\r\n")
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("id:"):
                        event_id = int(line[3:].strip())
                    elif not line:
                        if event == "message" and event_id is not None:
                            load.streamed.append(event_id)
                            last_id = event_id
                        event, event_id = "message", None
        except (aiohttp.ClientError, TimeoutError):
            pass  # its replica went away mid-stream: EventSource reconnects, so do we
        load.reconnects += 1
        await asyncio.sleep(0.2)


def restart_one(stack: Stack, service: str) -> None:
    """Restart one api container (SIGTERM, its graceful shutdown, start) and wait until it is healthy."""
    container = stack.container(service)
    run([tool("podman"), "restart", "-t", "10", container], env=stack.env, timeout=60)
    output = run_healthcheck_until_healthy(stack.env, container, timeout=60)
    status = run(
        [tool("podman"), "inspect", "--format", "{{.State.Health.Status}}", container], env=stack.env
    ).stdout
    assert status.strip() == "healthy", f"{service} after its restart: {output}"


async def every_message(session: aiohttp.ClientSession, api: str) -> dict[int, str]:
    """The whole history, paged backwards as a script would."""
    found: dict[int, str] = {}
    before = ""
    while True:
        async with session.get(f"{api}messages?limit=1000{before}") as response:
            assert response.status == 200, response.status
            page = await response.json()
        found.update((m["id"], m["Text"]) for m in page)
        if len(page) < 1000:
            return found
        before = f"&before={page[0]['id']}"


def test_the_file_wants_a_password_and_wires_every_replica_to_one_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("POSTGRES_PASSWORD", raising=False)
    refused = run([tool("podman-compose"), "-f", str(REPO / "compose.scale.yaml"), "config"], check=False)
    assert refused.returncode != 0 and "POSTGRES_PASSWORD" in refused.stdout + refused.stderr
    monkeypatch.setenv("POSTGRES_PASSWORD", "pw123")
    services = lifecycle.compose_services(("compose.scale.yaml",))
    url = "postgresql://synergychat:pw123@postgres:5432/synergychat"
    apis = {name: s for name, s in services.items() if s.get("environment", {}).get("ROLE") == "api"}
    assert sorted(apis) == list(API_REPLICAS)
    for name, api in apis.items():
        assert api["environment"]["API_DATABASE_URL"] == url, name
        # nginx balances over the name every replica answers to.
        assert "api" in api["networks"]["default"]["aliases"], name
        assert api["read_only"] is True and api["user"] == "10001:10001", name
    crawler = services["crawler"]
    assert crawler["environment"]["CRAWLER_DATABASE_URL"] == url
    assert crawler["deploy"]["replicas"] >= 2 and "CRAWLER_DB_PATH" not in crawler["environment"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "pw123"
    assert all("healthcheck" in service for service in services.values())
    # nginx is the one entry.
    assert [name for name, service in services.items() if service.get("ports")] == ["nginx"]
    config = (REPO / "deploy" / "nginx" / "scale.conf").read_text()
    assert "proxy_pass http://api:8080$api_uri;" in config
    # A POST that reached a replica is never sent to another one (it may be stored).
    (retried,) = re.findall(r"^\s*proxy_next_upstream\s+([^;]*);", config, re.MULTILINE)
    assert "error" in retried.split() and "non_idempotent" not in retried.split()


@pytest.mark.container
async def test_rolling_restart_of_the_api_under_load_loses_nothing(scale_stack: Stack) -> None:
    stack = scale_stack
    for service in ("postgres", *API_REPLICAS, "web"):
        output = run_healthcheck_until_healthy(stack.env, stack.container(service), timeout=120)
        assert "unhealthy" not in output, f"{service}: {output}"
    api = f"{stack.entry}/api/"
    wait_ready(f"{api}readyz", timeout=90, crawler=True)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        await chat_end_to_end(ChatBrowser(session), f"{stack.entry}/", expected_api=api)
        newest = max(await every_message(session, api))

        load, stop = Load(), asyncio.Event()
        stream = asyncio.create_task(follow_stream(session, api, load, newest, stop))
        workers = [
            asyncio.create_task(post_and_read(session, api, load, n, stop)) for n in range(LOAD_WORKERS)
        ]
        started = {}
        try:
            await asyncio.sleep(2)
            for service in API_REPLICAS:
                before = len(load.posted)
                await asyncio.to_thread(restart_one, stack, service)
                started[service] = run(
                    [tool("podman"), "inspect", "--format", "{{.State.StartedAt}}", stack.container(service)],
                    env=stack.env,
                ).stdout.strip()
                await asyncio.sleep(2)
                assert len(load.posted) > before, f"nothing was posted while {service} restarted"
        finally:
            stop.set()
            await asyncio.gather(*workers)
        # The stream catches up with every message posted.
        deadline = time.monotonic() + 15
        while not set(load.posted) <= set(load.streamed) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        stream.cancel()
        await asyncio.gather(stream, return_exceptions=True)

        print(
            f"rolling restart under load: {len(load.posted)} POSTs (201), {load.reads} reads, "
            f"{len(load.failures)} failed; the stream reconnected {load.reconnects} times"
        )
        if load.failures:
            nginx = run([tool("podman"), "logs", stack.container("nginx")], env=stack.env, check=False)
            errors = [line for line in nginx.stderr.splitlines() if "[error]" in line or "[warn]" in line]
            kinds = Counter(failure.split(":")[0] for failure in load.failures)
            pytest.fail(f"failed requests {dict(kinds)}; nginx said:\n" + "\n".join(errors[-30:]))
        assert len(load.posted) >= 50, "too little load to say anything"
        # Every 201 is stored, with its text.
        stored = await every_message(session, api)
        assert {i: stored.get(i) for i in load.posted} == load.posted
        # The stream, across its reconnections, saw each message once and in order.
        seen = [i for i in load.streamed if i in load.posted]
        assert seen == sorted(load.posted), "the stream missed, repeated or reordered messages"
        assert load.reconnects >= 1, "the stream never had to move to another replica"
