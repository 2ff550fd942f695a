"""The process's metrics, served as ``serve`` serves them: labels, one endpoint, no shared state.

The app is ``roles.build_app``'s, run by the server's own runner on 127.0.0.1, so
requests are observed where production observes them (the access logger).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from yarl import URL

from synergychat.access_log import access_log
from synergychat.metrics import PROCESS_METRICS, ProcessMetrics
from synergychat.roles import Role, RoleSettings, build_app
from synergychat.server import ChatAppRunner
from synergychat.settings import ApiSettings, CrawlerSettings, WebSettings

HISTOGRAM = "synergychat_http_request_duration_seconds"


@pytest.fixture
async def all_in_one() -> AsyncIterator[str]:
    settings = RoleSettings(
        web=WebSettings(api_url="/api"),
        api=ApiSettings(),
        crawler=CrawlerSettings(crawler_source_url="http://127.0.0.1:9", crawler_delay_seconds=0),
    )
    app = build_app(Role.ALL, settings)
    runner = ChatAppRunner(app, max_connections=64, shutdown_timeout=1, metrics=app[PROCESS_METRICS])
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def request_counts(base: str) -> dict[tuple[str, str, str, str], float]:
    """(role, route, method, status) -> how many requests the histogram has counted."""
    async with aiohttp.ClientSession() as session, session.get(base + "/metrics") as response:
        assert response.status == 200
        text = await response.text()
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == HISTOGRAM]
    return {
        (s.labels["role"], s.labels["route"], s.labels["method"], s.labels["status"]): s.value
        for s in family.samples
        if s.name == HISTOGRAM + "_count"
    }


async def test_routes_are_labelled_by_their_part_and_path_within_it(all_in_one: str) -> None:
    requests = [
        # (method, path) -> the labels it is counted under
        (("GET", "/"), ("web", "/", "GET", "200")),
        # A static file: its route, never the file's name.
        (("GET", "/app.js"), ("web", "/{name}", "GET", "200")),
        (("GET", "/no-such-file"), ("web", "/{name}", "GET", "404")),
        # The api's own path, as if it ran alone: dashboards read the same in every shape.
        (("GET", "/api/messages"), ("api", "/messages", "GET", "200")),
        (("GET", "/crawler/healthz"), ("crawler", "/healthz", "GET", "200")),
        (("GET", "/api/no/such/path"), ("api", "unmatched", "GET", "404")),
        # Methods beyond the usual ones share one label, however many there are.
        (("PROPFIND", "/api/messages"), ("api", "unmatched", "other", "405")),
    ]
    async with aiohttp.ClientSession() as session:
        for (method, path), _ in requests:
            async with session.request(method, all_in_one + path) as response:
                await response.read()
    await asyncio.sleep(0.05)  # the access line is written after the response is sent
    counts = await request_counts(all_in_one)
    for (method, path), labels in requests:
        assert counts.get(labels, 0) >= 1, (method, path, labels, sorted(counts))
    routes = {route for _, route, _, _ in counts}
    assert not routes & {"/app.js", "/no-such-file", "/api/no/such/path", "/api/messages"}


async def test_one_endpoint_for_the_process_and_only_by_its_literal_path(all_in_one: str) -> None:
    async with aiohttp.ClientSession() as session:
        for path in ("/api/metrics", "/crawler/metrics"):
            async with session.get(all_in_one + path) as response:
                assert response.status == 404, path
        # %6D is "m": aiohttp would route it to /metrics, but a gateway matching the
        # literal "/metrics" would let it through, so the endpoint refuses it.
        async with session.get(URL(all_in_one + "/%6Detrics", encoded=True)) as response:
            assert response.status == 404
        async with session.get(all_in_one + "/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
        # Prometheus asks for OpenMetrics and gets it.
        headers = {"Accept": "application/openmetrics-text; version=1.0.0"}
        async with session.get(all_in_one + "/metrics", headers=headers) as response:
            assert response.headers["Content-Type"].startswith("application/openmetrics-text")
            assert (await response.text()).endswith("# EOF\n")


async def test_requests_are_counted_with_the_access_log_off(all_in_one: str) -> None:
    access_log.setLevel(logging.WARNING)  # what ACCESS_LOG=false does
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(3):
                async with session.get(all_in_one + "/api/healthz") as response:
                    assert response.status == 200
        await asyncio.sleep(0.05)
        assert (await request_counts(all_in_one))[("api", "/healthz", "GET", "200")] == 3
    finally:
        access_log.setLevel(logging.NOTSET)


async def test_a_request_that_is_not_http_is_counted_too(all_in_one: str) -> None:
    url = URL(all_in_one)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    await writer.drain()
    assert (await reader.read()).split(b" ")[1] == b"400"
    writer.close()
    await asyncio.sleep(0.05)
    counts = await request_counts(all_in_one)
    assert [labels for labels in counts if labels[0:2] == ("all", "unmatched") and labels[3] == "400"]


def test_each_process_has_registries_of_its_own() -> None:
    # Two in one test process (tests, or two apps in one run) never add to each other.
    first, second = ProcessMetrics("api", api=True), ProcessMetrics("api", api=True)
    assert first.api is not None and second.api is not None
    first.api.messages_stored.inc(5)
    assert second.registry.get_sample_value("synergychat_messages_stored_total") == 0
    assert first.registry.get_sample_value("synergychat_messages_stored_total") == 5
    # A part a process doesn't run exports nothing.
    assert ProcessMetrics("web").registry.get_sample_value("synergychat_messages_stored_total") is None
