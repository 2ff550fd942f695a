"""The OpenAPI documents themselves: valid OpenAPI 3.1, one operation per route and one route
per operation, and served with ``servers`` saying where the service is mounted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from aiohttp import web
from aiohttp.test_utils import TestClient

from synergychat.openapi import Service, load_document
from synergychat.roles import Role, RoleSettings, build_app
from synergychat.settings import ApiSettings, WebSettings
from tests.crawler.conftest import crawler_settings
from tests.support.chat_server import ChatTestServer
from tests.support.openapi_responses import Exchange, violations

# The api answers OPTIONS on every path in its CORS middleware, not with routes.
MIDDLEWARE_METHODS = {"api": {"options"}, "crawler": set[str]()}


def service_app(service: Service, tmp_path: Path) -> web.Application:
    """The app a ``--role api`` or ``--role crawler`` process serves (with its /metrics)."""
    if service == "api":
        return build_app(Role.API, RoleSettings(api=ApiSettings(api_db_filepath="", crawler_base_url="")))
    return build_app(Role.CRAWLER, RoleSettings(crawler=crawler_settings(None, "http://127.0.0.1:9")))


def routed_operations(app: web.Application) -> set[tuple[str, str]]:
    # aiohttp adds a HEAD beside each GET; the documents say so once, in prose.
    return {
        (route.resource.canonical, route.method.lower())
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }


@pytest.mark.parametrize("service", ["api", "crawler"])
def test_the_document_is_valid_openapi_3_1(service: Service) -> None:
    document = load_document(service)
    assert document["openapi"].startswith("3.1.")
    # Against the OpenAPI 3.1 schema (schemathesis carries the official one).
    schemathesis.openapi.from_dict(document).validate()


@pytest.mark.parametrize("service", ["api", "crawler"])
def test_every_route_is_documented_and_every_operation_routed(service: Service, tmp_path: Path) -> None:
    document = load_document(service)
    documented = {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method not in MIDDLEWARE_METHODS[service]
    }
    assert routed_operations(service_app(service, tmp_path)) == documented


@pytest.mark.parametrize("service", ["api", "crawler"])
async def test_the_index_lists_documented_paths(
    service: Service, tmp_path: Path, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(service_app(service, tmp_path))
    index = await (await client.get("/")).json()
    assert set(index["endpoints"]) <= set(load_document(service)["paths"])
    assert "/openapi.json" in index["endpoints"]


@pytest.mark.parametrize("service", ["api", "crawler"])
async def test_served_standalone_the_paths_are_at_the_root(
    service: Service, tmp_path: Path, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(service_app(service, tmp_path))
    response = await client.get("/openapi.json")
    served = await response.json()
    assert response.content_type == "application/json"
    assert served["servers"][0]["url"] == "/"
    assert served["paths"] == load_document(service)["paths"]


async def test_under_role_all_servers_say_where_each_part_is_mounted(tmp_path: Path) -> None:
    settings = RoleSettings(
        web=WebSettings(web_port=8080, api_url="/api"),
        api=ApiSettings(api_port=8080, api_db_filepath="", crawler_base_url=""),
        crawler=crawler_settings(tmp_path / "counts", "http://127.0.0.1:9"),
    )
    client = TestClient(ChatTestServer(build_app(Role.ALL, settings)))
    await client.start_server()
    try:
        mounts: list[tuple[str, Service]] = [("/api", "api"), ("/crawler", "crawler")]
        for prefix, service in mounts:
            served = await (await client.get(f"{prefix}/openapi.json")).json()
            assert served["servers"] == [
                {"url": prefix, "description": f"this {service}, where the server that answered mounts it"}
            ]
            assert served["info"]["title"] == load_document(service)["info"]["title"]
            # /metrics is the process's, at the root of the port: not under /api or /crawler.
            assert set(served["paths"]) == set(load_document(service)["paths"]) - {"/metrics"}
            # The documented paths answer there: the servers entry plus a path is a real URL.
            response = await client.get(f"{prefix}/healthz")
            assert response.status == 200
    finally:
        await client.close()


def test_an_undocumented_answer_is_reported() -> None:
    """The suite-wide check (tests/support/openapi_responses.py) finds what it should."""
    ok = Exchange(
        "api", "/", "GET", "/healthz", 200, {"Content-Type": "application/json"}, b'{"status": "ok"}'
    )
    assert list(violations(ok)) == []
    wrong_body = Exchange("api", "/", "GET", "/healthz", 200, {"Content-Type": "application/json"}, b"{}")
    assert any("status" in problem for problem in violations(wrong_body))
    wrong_status = Exchange("crawler", "/", "GET", "/stats", 418, {"Content-Type": "application/json"})
    assert list(violations(wrong_status)) == ["status 418 is not documented (documented: 200, 400, 503)"]
    mounted = Exchange("api", "/api", "GET", "/api/messages?limit=x", 400, {"Content-Type": "text/plain"})
    assert list(violations(mounted)) == [
        "content type text/plain is not documented (documented: application/json)"
    ]
    no_allow = Exchange("crawler", "/", "DELETE", "/stats", 405, {"Content-Type": "application/json"})
    assert list(violations(no_allow)) == ["a 405 without an Allow header"]
    unknown = Exchange("crawler", "/", "GET", "/nope", 200, {"Content-Type": "application/json"})
    assert list(violations(unknown)) == ["undocumented path: expected a 404 error, got 200"]
