"""The doctor against stand-in servers: the original Go images, gateways' answers,
and mistakes that need no real role to show. The doctor runs as the real command."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from tests.doctor.conftest import DoctorRunner, Serve
from tests.doctor.stand_ins import (
    canned_app,
    original_api_app,
    original_web_app,
    page_with_config,
    proxy_app,
)
from tests.support.processes import free_port


async def test_the_original_images_are_understood(serve: Serve, doctor: DoctorRunner) -> None:
    api = await serve(original_api_app())
    page = await serve(original_web_app(api))
    run = await doctor(page + "/", "--json")
    assert run.code == 1
    assert run.check("page")["saw"].endswith("the original SynergyChat page (API_URL in app.js)")
    assert run.report["api_url"] == api
    assert run.report["api_base"] == api + "/"
    assert run.statuses() == {
        "page": "ok",
        "api-url": "ok",
        "csp": "ok",
        "healthz": "ok",
        # The original has no /readyz and no stream: said, not failed.
        "readyz": "warn",
        "crawler": "skip",
        "messages": "ok",
        "stream": "warn",
        "cors": "ok",
        # ...but no GET / either, which a load balancer's default health check needs.
        "lb-root": "fail",
    }
    assert run.check("readyz")["problem"].startswith("The api has no readyz (the original Go api?)")


async def test_the_original_page_with_a_relative_api_url_doubles_the_slash(
    serve: Serve, doctor: DoctorRunner
) -> None:
    # The original concatenates `${apiUrl}/messages`: API_URL=/api/ calls /api//messages.
    page = await serve(original_web_app("/api/"))
    run = await doctor(page + "/", "--json")
    assert run.report["api_base"] == page + "/api//"
    assert run.check("api-url")["saw"].endswith(f"(the original page calls {page}/api//messages)")


async def test_a_gateway_without_a_healthy_api_names_the_health_check(
    serve: Serve, doctor: DoctorRunner
) -> None:
    # What Envoy (GKE's gateway) answers when its health check marked every api pod unhealthy.
    web_url = await serve(page_with_config("/api"))
    gateway = await serve(canned_app(503, "no healthy upstream"))
    entry = await serve(proxy_app([("/api/", gateway), ("/", web_url)]))
    run = await doctor(entry + "/", "--json")
    assert run.code == 1
    healthz = run.check("healthz")
    assert healthz["status"] == "fail"
    assert healthz["problem"] == (
        f'The gateway answered "no healthy upstream" for {entry}/api/healthz: its load balancer\'s health check '
        "marks the api unhealthy (by default it probes GET / and needs a 200); point it at /healthz (on GKE a "
        "HealthCheckPolicy), or run an api that answers GET /."
    )
    assert run.check("lb-root")["status"] == "skip"


async def test_a_proxy_whose_api_is_down(serve: Serve, doctor: DoctorRunner) -> None:
    web_url = await serve(page_with_config("/api/"))
    entry = await serve(proxy_app([("/api/", f"http://127.0.0.1:{free_port()}"), ("/", web_url)]))
    run = await doctor(entry + "/", "--json")
    assert run.code == 1
    healthz = run.check("healthz")
    assert healthz["problem"].startswith(
        f"The proxy in front of {entry} answered HTTP 502 for {entry}/api/healthz: it routes /api/ but the api "
        "behind it is down or elsewhere"
    )
    assert healthz["variable"] == "API_PORT"


async def test_a_csp_that_blocks_the_api(serve: Serve, doctor: DoctorRunner) -> None:
    api = await serve(original_api_app())
    page = await serve(page_with_config(api, csp="default-src 'self'"))
    run = await doctor(page + "/", "--json")
    csp = run.check("csp")
    assert csp["status"] == "fail"
    assert csp["problem"].startswith(
        f"The page's Content-Security-Policy (default-src 'self') does not let the browser connect to {api}:"
    )
    assert csp["variable"] == "API_URL"


async def test_api_url_without_a_scheme(serve: Serve, doctor: DoctorRunner) -> None:
    page = await serve(page_with_config("localhost:8081"))
    run = await doctor(page + "/", "--json")
    assert run.code == 1
    assert run.check("api-url")["problem"] == (
        "API_URL is localhost:8081, without http://: the browser reads 'localhost' as a URL scheme and cannot "
        "call it; write it as http://localhost:8081 (or https://)."
    )
    assert run.check("healthz")["status"] == "skip"


async def test_api_url_that_is_a_bare_host_name(serve: Serve, doctor: DoctorRunner) -> None:
    page = await serve(page_with_config("synchatapi.internal"))
    run = await doctor(page + "/", "--json")
    assert run.check("api-url")["problem"] == (
        "API_URL is synchatapi.internal, without http://: the browser takes it for a path next to the page "
        f"({page}/synchatapi.internal/); write http://synchatapi.internal (or https://)."
    )


async def test_api_url_on_0000(serve: Serve, doctor: DoctorRunner) -> None:
    page = await serve(page_with_config("http://0.0.0.0:8081"))
    run = await doctor(page + "/", "--json")
    assert run.check("api-url")["problem"].startswith(
        "API_URL is http://0.0.0.0:8081: 0.0.0.0 is an address servers listen on, not one browsers can call"
    )


async def test_api_url_whose_host_does_not_resolve(serve: Serve, doctor: DoctorRunner) -> None:
    page = await serve(page_with_config("http://synergychat-doctor-test.invalid"))
    run = await doctor(page + "/", "--json")
    assert run.code == 1
    healthz = run.check("healthz")
    assert healthz["saw"] == "the host name synergychat-doctor-test.invalid does not resolve"
    assert healthz["problem"].startswith(
        "The host name synergychat-doctor-test.invalid in API_URL does not resolve here"
    )


async def test_nothing_listening_at_api_url(serve: Serve, doctor: DoctorRunner) -> None:
    port = free_port()
    page = await serve(page_with_config(f"http://127.0.0.1:{port}"))
    run = await doctor(page + "/", "--json")
    assert run.check("healthz")["problem"] == (
        f"Nothing listens at 127.0.0.1:{port}: start the api, or fix the port in API_URL (the port the api is "
        "published on; API_PORT inside its container)."
    )
    assert {run.check(name)["status"] for name in ("readyz", "messages", "cors", "lb-root")} == {"skip"}


async def test_api_url_pointing_at_the_web(serve: Serve, doctor: DoctorRunner) -> None:
    # A web that serves a page for every path (as many static servers do): API_URL=http://<web>.
    async def any_page(request: web.Request) -> web.Response:
        return web.Response(text="<!DOCTYPE html><html></html>", content_type="text/html")

    spa = web.Application()
    spa.router.add_get("/{tail:.*}", any_page)
    other = await serve(spa)
    page = await serve(page_with_config(other))
    run = await doctor(page + "/", "--json")
    assert run.check("healthz")["problem"] == (
        f"{other}/healthz answered with a web page, not the api: API_URL ({other}) points at a web server, "
        "not at the api."
    )


async def test_a_server_that_never_answers_times_out(serve: Serve, doctor: DoctorRunner) -> None:
    async def stall(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response()

    slow = web.Application()
    slow.router.add_get("/{tail:.*}", stall)
    page = await serve(slow)
    run = await doctor(page + "/", "--timeout", "0.5")
    assert run.code == 1
    assert f"✘ page      {page}/  no answer within 0.5 s" in run.out


async def test_the_api_url_given_instead_of_the_page(serve: Serve, doctor: DoctorRunner) -> None:
    api = await serve(original_api_app())
    run = await doctor(api + "/healthz", "--json")
    assert run.check("page")["problem"] == (
        f"{api}/healthz answers JSON, not the chat page: it is probably the api's address; give the doctor the "
        "URL users open in their browser."
    )


async def test_a_preflight_answered_by_a_proxy(serve: Serve, doctor: DoctorRunner) -> None:
    api = await serve(original_api_app())

    # Something in front of the api that refuses OPTIONS itself.
    @web.middleware
    async def refuse_options(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS":
            return web.Response(status=405, text="method not allowed")
        return await handler(request)

    guard = proxy_app([("/v1/", api)])
    guard.middlewares.append(refuse_options)
    front = await serve(guard)
    page = await serve(page_with_config(front + "/v1"))
    run = await doctor(page + "/", "--json")
    cors = run.check("cors")
    assert cors["status"] == "fail"
    assert cors["problem"].startswith(
        f"The preflight OPTIONS {front}/v1/messages answered HTTP 405 without CORS headers"
    )


def odd_api_app(readyz: bytes, messages: bytes = b"[]") -> web.Application:
    """An api whose readyz and messages answer exactly these bytes (CORS as the original's)."""

    def raw(body: bytes) -> Handler:
        async def answer(request: web.Request) -> web.Response:
            return web.Response(body=body, content_type="application/json")

        return answer

    app = original_api_app(messages)
    app.router.add_get("/readyz", raw(readyz))
    return app


@pytest.mark.parametrize(
    ("readyz", "messages", "failed"),
    [
        # Each guards a shape of answer the doctor must describe, not crash on.
        (
            b'{"checks": {"database": "yes", "crawler": {"state": "unreachable", "location": 5}}}',
            b"[]",
            {"readyz", "crawler"},
        ),
        (
            b'{"checks": {"database": {"ok": true}, "crawler": {"state": "unreachable", "location": "http://[x"}}}',
            b'[{"AuthorUsername": 1}]',
            {"crawler", "messages"},
        ),
        (b'{"checks": []}', b"\xff\xfe not utf-8", {"readyz", "messages"}),
        (b"[]", b'{"messages": []}', {"readyz", "messages"}),
        (
            (
                b'{"status": "ready", "checks": {"database": {"ok": true}, "crawler": {"state": "ok", "ok": true, '
                b'"location": null, "progress": {"state": [7], "books_counted": "many", "last_error": 3}}}}'
            ),
            b"[]",
            set(),
        ),
    ],
)
async def test_odd_answers_are_described_not_crashed_on(
    serve: Serve, doctor: DoctorRunner, readyz: bytes, messages: bytes, failed: set[str]
) -> None:
    api = await serve(odd_api_app(readyz, messages))
    page = await serve(page_with_config(api))
    run = await doctor(page + "/", "--json", "--no-lb-check")
    assert {name for name, status in run.statuses().items() if status == "fail"} == failed
    assert all(check["problem"] for check in run.report["checks"] if check["status"] == "fail")


def readiness_with_crawl(state: str, last_error: object) -> bytes:
    return json.dumps(
        {
            "status": "ready",
            "checks": {
                "database": {"ok": True, "detail": "writable"},
                "crawler": {
                    "ok": True,
                    "state": "ok",
                    "location": "http://crawler:8080",
                    "detail": "reachable",
                    "progress": {
                        "state": state,
                        "books_counted": 0,
                        "pages_done": 0,
                        "last_error": last_error,
                    },
                },
            },
        }
    ).encode()


async def test_a_crawler_that_cannot_read_its_catalogue(serve: Serve, doctor: DoctorRunner) -> None:
    error = {"at": "2026-01-01T00:00:00Z", "message": "catalogue page https://gutendex.com/books/: timed out"}
    api = await serve(odd_api_app(readiness_with_crawl("retrying", error)))
    page = await serve(page_with_config(api))
    run = await doctor(page + "/", "--json", "--no-lb-check")
    # The chat works; only /stats is stuck at what was counted: a warning, exit 0.
    assert run.code == 0
    crawler = run.check("crawler")
    assert crawler["status"] == "warn"
    assert crawler["saw"] == (
        "http://crawler:8080: reachable; crawl retrying, 0 books counted, 0 catalogue pages done"
    )
    assert crawler["problem"] == (
        "The crawler cannot read its catalogue (catalogue page https://gutendex.com/books/: timed out): check "
        "CRAWLER_SOURCE_URL as the crawler's network sees it (the default, https://gutendex.com, needs a way "
        "out to the internet)."
    )
    assert crawler["variable"] == "CRAWLER_SOURCE_URL"


async def test_a_crawl_that_failed(serve: Serve, doctor: DoctorRunner) -> None:
    api = await serve(odd_api_app(readiness_with_crawl("failed", "the crawl stopped: OSError()")))
    page = await serve(page_with_config(api))
    run = await doctor(page + "/", "--json", "--no-lb-check")
    assert run.code == 0
    assert run.check("crawler")["problem"] == (
        "The crawler answers but its crawl has failed (the crawl stopped: OSError()): it counts no more books; "
        "see the crawler's log, and restart it once the cause is fixed."
    )
