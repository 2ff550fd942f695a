"""The doctor against real deployments: ``python -m synergychat`` roles as processes on
127.0.0.1, wired right and deliberately wired wrong, behind nginx or a small proxy
where the shape has one. Each miswiring must come out as its one sentence."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.doctor.conftest import DoctorRun, DoctorRunner, Nginx, Serve, nginx_proxy_pass
from tests.doctor.stand_ins import crawler_app, gutendex_app, original_api_app, proxy_app
from tests.support.processes import free_port, running_role

pytestmark = pytest.mark.process

ALL_OK = {
    "page": "ok",
    "api-url": "ok",
    "csp": "ok",
    "healthz": "ok",
    "readyz": "ok",
    "crawler": "ok",
    "messages": "ok",
    "stream": "ok",
    "cors": "ok",
    "lb-root": "ok",
}
CHECK_KEYS = {"name", "status", "url", "saw", "problem", "variable"}

# A proxy in front of web (and maybe api): (routes as (prefix, upstream)) -> the entry URL.
Proxy = Callable[[list[tuple[str, str]]], Awaitable[str]]


@pytest.fixture(params=["aiohttp-proxy", "nginx"])
def proxy(request: pytest.FixtureRequest, serve: Serve) -> Proxy:
    """The same routing table served by the test's aiohttp proxy, or by Debian's nginx."""
    if request.param == "aiohttp-proxy":

        async def start_aiohttp(routes: list[tuple[str, str]]) -> str:
            return await serve(proxy_app(routes)) + "/"

        return start_aiohttp
    start_nginx: Callable[..., Nginx] = request.getfixturevalue("nginx")

    async def start(routes: list[tuple[str, str]]) -> str:
        # proxy_pass with a URI part ("/") strips the location's prefix, like the course's config.
        locations = "\n".join(
            nginx_proxy_pass(prefix, upstream.rstrip("/") + "/") for prefix, upstream in routes
        )
        return start_nginx(locations).url

    return start


async def test_healthy_all_in_one(tmp_path: Path, serve: Serve, doctor: DoctorRunner) -> None:
    gutendex = await serve(gutendex_app())
    with running_role(
        "all", tmp_path, {"CRAWLER_SOURCE_URL": gutendex, "CRAWLER_DELAY_SECONDS": "0"}
    ) as all_:
        page = all_.url + "/"
        run = await doctor(page, "--json")
        text = await doctor(page)
    assert run.code == 0, run.out
    report = run.report
    assert report["ok"] is True
    assert report["page_url"] == page
    assert report["api_url"] == "/api"
    assert report["api_base"] == f"{all_.url}/api/"
    assert report["counts"] == {"ok": 10, "warn": 0, "fail": 0, "skip": 0}
    assert run.statuses() == ALL_OK
    assert all(set(check) == CHECK_KEYS and check["problem"] is None for check in report["checks"])
    assert run.check("crawler")["saw"].startswith("in-process: reachable; crawl ")
    assert run.check("cors")["saw"] == f"the page and the api share the origin {all_.url}: no CORS needed"

    assert text.code == 0
    lines = text.out.splitlines()
    assert lines[0] == f"SynergyChat doctor: {page}"
    assert lines[1] == f"✔ page      {page}  HTTP 200, text/html, a SynergyChat page"
    assert lines[4] == f'✔ healthz   {all_.url}/api/healthz  HTTP 200, application/json {{"status": "ok"}}'
    assert lines[-1] == "All is well (10 ok, 0 skipped)."
    assert len(lines) == 12  # a title, one line per hop, a verdict


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        # The course's first shape: page on localhost:8080, API_URL=http://localhost:8081.
        "localhost",
    ],
)
async def test_healthy_split_web_api_crawler(
    tmp_path: Path, serve: Serve, doctor: DoctorRunner, host: str
) -> None:
    crawler = await serve(crawler_app(books_counted=3))
    api_port = free_port()
    with ExitStack() as stack:
        stack.enter_context(running_role("api", tmp_path, {"CRAWLER_BASE_URL": crawler}, port=api_port))
        web = stack.enter_context(running_role("web", tmp_path, {"API_URL": f"http://{host}:{api_port}"}))
        run = await doctor(f"http://{host}:{web.port}/", "--json")
    assert run.code == 0, run.out
    assert run.statuses() == ALL_OK
    # The api's readiness names no address: the doctor says which variable it checked.
    assert run.check("crawler")["saw"] == (
        "CRAWLER_BASE_URL: reachable; crawl crawling, 3 books counted, 1 catalogue pages done"
    )
    # Cross-origin: the preflight was made and passed.
    assert run.check("cors")["saw"] == (
        f"preflight from http://{host}:{web.port}: HTTP 204, Access-Control-Allow-Origin "
        f"http://{host}:{web.port}; POST with Content-Type allowed"
    )


async def test_healthy_split_with_the_real_crawler(
    tmp_path: Path, serve: Serve, doctor: DoctorRunner
) -> None:
    gutendex = await serve(gutendex_app())
    env = {"CRAWLER_SOURCE_URL": gutendex, "CRAWLER_DELAY_SECONDS": "0"}
    with ExitStack() as stack:
        crawler = stack.enter_context(running_role("crawler", tmp_path, env))
        api = stack.enter_context(running_role("api", tmp_path, {"CRAWLER_BASE_URL": crawler.url}))
        web = stack.enter_context(running_role("web", tmp_path, {"API_URL": api.url}))
        run = await doctor(web.url + "/", "--json")
    assert run.code == 0, run.out
    assert run.statuses() == ALL_OK
    assert run.check("crawler")["saw"].startswith("CRAWLER_BASE_URL: reachable; crawl ")


async def test_localhost_api_url_seen_from_another_host(tmp_path: Path, doctor: DoctorRunner) -> None:
    # 127.0.0.2 stands for the server's name: a browser elsewhere opens the page there.
    with ExitStack() as stack:
        api = stack.enter_context(running_role("api", tmp_path))
        web = stack.enter_context(running_role("web", tmp_path, {"API_URL": f"http://localhost:{api.port}"}))
        run = await doctor(f"http://127.0.0.2:{web.port}/", "--json")
        text = await doctor(f"http://127.0.0.2:{web.port}/")
    assert run.code == 1
    check = run.check("api-url")
    assert check["status"] == "fail"
    assert check["variable"] == "API_URL"
    assert check["problem"] == (
        f"API_URL is http://localhost:{api.port}: the browser of anyone not on the server will call its own "
        "machine; set API_URL to an address other machines reach (the server's name, or a path such as /api/ "
        "that a proxy routes to the api)."
    )
    # From this machine the api does answer: only the wiring is wrong (and no crawler is configured).
    assert {name for name, status in run.statuses().items() if status != "ok"} == {"api-url", "crawler"}
    assert run.check("crawler")["status"] == "warn"
    assert text.code == 1
    assert (
        f"✘ api-url   http://localhost:{api.port}/  API_URL http://localhost:{api.port} resolves" in text.out
    )
    assert f"            API_URL is http://localhost:{api.port}: the browser of anyone" in text.out
    assert text.out.splitlines()[-1] == "1 failure(s), 1 warning(s) (8 ok, 0 skipped)."


async def test_relative_api_url_the_proxy_does_not_route(
    tmp_path: Path, proxy: Proxy, doctor: DoctorRunner
) -> None:
    with running_role("api", tmp_path), running_role("web", tmp_path, {"API_URL": "/api/"}) as web:
        # The proxy sends everything to the web: nobody routes /api/ to the api.
        entry = await proxy([("/", web.url)])
        run = await doctor(entry, "--json")
    origin = entry.rstrip("/")
    assert run.code == 1
    healthz = run.check("healthz")
    assert healthz["status"] == "fail"
    assert healthz["variable"] == "API_URL"
    assert healthz["problem"] == (
        f"Nothing at /api/ answers like the api (HTTP 404 for {origin}/api/healthz): no proxy route sends /api/ "
        f"on {origin} to the api; add one that strips the prefix (nginx: location /api/ "
        "{ proxy_pass http://<api>/; }), or set API_URL to the api's own address."
    )
    # One root cause, said once: the hops behind it are skipped.
    assert [c["name"] for c in run.report["checks"] if c["status"] == "skip"] == [
        "readyz",
        "crawler",
        "messages",
        "stream",
        "cors",
        "lb-root",
    ]


async def test_relative_api_url_the_proxy_routes(tmp_path: Path, proxy: Proxy, doctor: DoctorRunner) -> None:
    with running_role("api", tmp_path) as api, running_role("web", tmp_path, {"API_URL": "/api/"}) as web:
        entry = await proxy([("/api/", api.url), ("/", web.url)])
        run = await doctor(entry, "--json")
    assert run.code == 0, run.out
    # No crawler in this deployment: a warning, not a failure.
    assert run.statuses() == {**ALL_OK, "crawler": "warn"}
    assert run.check("crawler")["variable"] == "CRAWLER_BASE_URL"


async def test_crawler_base_url_pointing_at_nothing(tmp_path: Path, doctor: DoctorRunner) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    with ExitStack() as stack:
        api = stack.enter_context(running_role("api", tmp_path, {"CRAWLER_BASE_URL": closed}))
        web = stack.enter_context(running_role("web", tmp_path, {"API_URL": api.url}))
        run = await doctor(web.url + "/", "--json")
    assert run.code == 1
    crawler = run.check("crawler")
    assert crawler["status"] == "fail"
    assert crawler["variable"] == "CRAWLER_BASE_URL"
    assert crawler["saw"] == "CRAWLER_BASE_URL: unreachable"
    # The address is in the api's log, not in its public readiness answer.
    assert crawler["problem"] == (
        "The api cannot reach the crawler at its CRAWLER_BASE_URL (the api's log names the address and the "
        "error): check that the crawler is running and that CRAWLER_BASE_URL names it as the api's network "
        "sees it (in a container localhost is the api itself), for example http://crawler:8080 in compose "
        "or http://crawler-service in Kubernetes."
    )
    # The chat itself works: the crawler being away is the only failure.
    assert [name for name, status in run.statuses().items() if status != "ok"] == ["crawler"]


async def test_cors_refusing_the_pages_origin(tmp_path: Path, doctor: DoctorRunner) -> None:
    with ExitStack() as stack:
        api = stack.enter_context(
            running_role("api", tmp_path, {"API_CORS_ORIGINS": "https://chat.example.com"})
        )
        web = stack.enter_context(running_role("web", tmp_path, {"API_URL": api.url}))
        run = await doctor(web.url + "/", "--json")
    assert run.code == 1
    cors = run.check("cors")
    assert cors["status"] == "fail"
    assert cors["variable"] == "API_CORS_ORIGINS"
    assert cors["saw"] == f"preflight from {web.url}: HTTP 403, Access-Control-Allow-Origin absent"
    assert cors["problem"] == (
        f"The api refuses the page's origin {web.url} (its preflight answered HTTP 403 without allowing it): "
        f"the browser will block every call; add {web.url} to API_CORS_ORIGINS on the api, or leave "
        "API_CORS_ORIGINS unset to allow any origin."
    )


async def test_an_api_that_answers_404_on_get_root_behind_a_proxy(
    tmp_path: Path, serve: Serve, proxy: Proxy, doctor: DoctorRunner
) -> None:
    # The GKE shape: a path rule rewrites /api/ to the api's /, which the load balancer probes.
    standin_api = await serve(original_api_app())
    with running_role("web", tmp_path, {"API_URL": "/api"}) as web:
        entry = await proxy([("/api/", standin_api), ("/", web.url)])
        run = await doctor(entry, "--json")
        skipped = await doctor(entry, "--json", "--no-lb-check")
    base = entry + "api/"
    assert run.code == 1
    lb = run.check("lb-root")
    assert lb["status"] == "fail"
    assert lb["url"] == base
    assert lb["saw"] == 'HTTP 404, text/plain "404 page not found"'
    assert lb["problem"] == (
        f"The api answers HTTP 404 on GET {base}: a load balancer's default health check probes GET / and needs "
        'a 200, so it would mark the api unhealthy ("no healthy upstream" on GKE); point the health check at '
        "/healthz (on GKE a HealthCheckPolicy) or run an api that answers GET /."
    )
    assert [name for name, status in run.statuses().items() if status == "fail"] == ["lb-root"]
    # Told that the load balancer probes /healthz, the doctor has nothing left to fail.
    assert skipped.code == 0
    assert skipped.check("lb-root")["status"] == "skip"


async def test_empty_api_url(tmp_path: Path, doctor: DoctorRunner) -> None:
    with running_role("web", tmp_path) as web:
        run = await doctor(web.url + "/", "--json")
        text = await doctor(web.url + "/")
    assert run.code == 1
    assert run.report["api_url"] == ""
    assert run.report["api_base"] is None
    check = run.check("api-url")
    assert check["status"] == "fail"
    assert check["variable"] == "API_URL"
    assert check["problem"] == (
        "API_URL is empty: the page loads but cannot chat; set API_URL on the web role to the api's address as "
        "the browser sees it (a path such as /api/ that a proxy routes to the api, or http://<server>:8081)."
    )
    assert run.report["counts"] == {"ok": 1, "warn": 0, "fail": 1, "skip": 8}
    assert text.code == 1
    assert (
        "- csp, healthz, readyz, crawler, messages, stream, cors, lb-root  not checked: there is no api URL"
        in text.out
    )


async def test_nginx_with_a_self_signed_certificate(
    tmp_path: Path, nginx: Callable[..., Nginx], tls_files: tuple[Path, Path], doctor: DoctorRunner
) -> None:
    # The course's nginx shape: 80 redirects to 443 (self-signed), /api/ to the api, the rest to web.
    with running_role("api", tmp_path) as api, running_role("web", tmp_path, {"API_URL": "/api/"}) as web:
        front = nginx(
            nginx_proxy_pass("/api/", api.url + "/") + "\n" + nginx_proxy_pass("/", web.url + "/"),
            tls=tls_files,
        )
        trusted = await doctor(front.url, "--json")
        insecure = await doctor(front.url, "--json", "--insecure")
    page = trusted.check("page")
    assert trusted.code == 1
    assert page["status"] == "fail"
    assert page["problem"].startswith("The page's TLS certificate is not trusted (")
    assert page["problem"].endswith("use a trusted certificate, or pass --insecure to check the rest.")

    assert insecure.code == 0, insecure.out
    assert insecure.statuses() == {**ALL_OK, "crawler": "warn"}
    https_page = f"https://127.0.0.1:{front.https_port}/"
    assert insecure.check("page")["url"] == https_page
    assert insecure.check("page")["saw"] == (
        f"HTTP 200, text/html (redirected from {front.url}), a SynergyChat page"
    )
    assert insecure.report["api_base"] == https_page + "api/"


# ---- API_URL leading to another role ---------------------------------------------------------
# Every role answers /healthz alike, so healthz alone cannot tell them apart; GET / names them.


# The crawler's catalogue is a closed port: it keeps retrying, but answers / and /healthz at once.
def crawler_env() -> dict[str, str]:
    return {"CRAWLER_SOURCE_URL": f"http://127.0.0.1:{free_port()}", "CRAWLER_DELAY_SECONDS": "0"}


ALL_SKIPPED_AFTER_HEALTHZ = ["readyz", "crawler", "messages", "stream", "cors", "lb-root"]


def assert_stops_at_healthz(run_: DoctorRun, reason: str) -> None:
    assert run_.code == 1, run_.out
    assert run_.report["ok"] is False
    assert run_.statuses() == {
        "page": "ok",
        "api-url": "ok",
        "csp": "ok",
        "healthz": "fail",
        **{name: "skip" for name in ALL_SKIPPED_AFTER_HEALTHZ},
    }
    assert run_.report["counts"] == {"ok": 3, "warn": 0, "fail": 1, "skip": 6}
    assert run_.check("healthz")["variable"] == "API_URL"
    for name in ALL_SKIPPED_AFTER_HEALTHZ:
        assert run_.check(name)["saw"] == f"not checked: {reason}"


async def test_api_url_pointing_at_the_crawler(tmp_path: Path, doctor: DoctorRunner) -> None:
    with ExitStack() as stack:
        crawler = stack.enter_context(running_role("crawler", tmp_path, crawler_env()))
        web = stack.enter_context(running_role("web", tmp_path, {"API_URL": crawler.url}))
        run = await doctor(web.url + "/", "--json")
        text = await doctor(web.url + "/")
        no_lb = await doctor(web.url + "/", "--json", "--no-lb-check")
    base = crawler.url + "/"
    problem = (
        f"API_URL points at the crawler, not the api (synergychat-crawler answers GET {base}): set it to the "
        "api's URL as the browser sees it (the api's own address, or a path such as /api/ that a proxy routes "
        "to the api); the crawler's address belongs in the api's CRAWLER_BASE_URL, not in API_URL."
    )
    assert run.report["api_base"] == base
    assert_stops_at_healthz(run, "API_URL leads to the crawler, not the api")
    healthz = run.check("healthz")
    assert healthz["url"] == base + "healthz"
    assert healthz["saw"] == (
        f'HTTP 200, application/json {{"status": "ok"}}; but GET {base} answers synergychat-crawler'
    )
    assert healthz["problem"] == problem

    assert text.code == 1
    assert text.out.splitlines()[4:] == [
        f"✘ healthz   {base}healthz  {healthz['saw']}",
        f"            {problem}",
        (
            "- readyz, crawler, messages, stream, cors, lb-root  not checked: API_URL leads to the crawler, "
            "not the api"
        ),
        "1 failure(s), 0 warning(s) (3 ok, 6 skipped).",
    ]
    # The crawler is recognised whether or not the load balancer's GET / is checked.
    assert_stops_at_healthz(no_lb, "API_URL leads to the crawler, not the api")
    assert no_lb.check("healthz")["problem"] == problem


async def test_a_proxy_route_sending_api_to_the_crawler(
    tmp_path: Path, proxy: Proxy, doctor: DoctorRunner
) -> None:
    with ExitStack() as stack:
        crawler = stack.enter_context(running_role("crawler", tmp_path, crawler_env()))
        web = stack.enter_context(running_role("web", tmp_path, {"API_URL": "/api/"}))
        entry = await proxy([("/api/", crawler.url), ("/", web.url)])
        run = await doctor(entry, "--json")
    origin = entry.rstrip("/")
    assert_stops_at_healthz(run, "API_URL leads to the crawler, not the api")
    assert run.check("healthz")["problem"] == (
        f"API_URL /api/ leads to the crawler, not the api (synergychat-crawler answers GET {origin}/api/): the "
        f"route for /api/ on {origin} sends it to the crawler; point that route at the api (nginx: location "
        "/api/ { proxy_pass http://<api>/; })."
    )


async def test_api_url_pointing_at_the_web_page_itself(tmp_path: Path, doctor: DoctorRunner) -> None:
    # The web answers /healthz like the api, and its readyz has no database: only GET / tells.
    port = free_port()
    with running_role("web", tmp_path, {"API_URL": f"http://127.0.0.1:{port}"}, port=port) as web:
        run = await doctor(web.url + "/", "--json")
    base = web.url + "/"
    assert_stops_at_healthz(run, "API_URL leads to the web page, not the api")
    assert run.check("healthz")["saw"] == (
        f'HTTP 200, application/json {{"status": "ok"}}; but GET {base} answers the SynergyChat page'
    )
    assert run.check("healthz")["problem"] == (
        f"API_URL points at the web page, not the api (the SynergyChat page answers GET {base}): set it to the "
        "api's URL as the browser sees it (the api's own address, or a path such as /api/ that a proxy routes "
        "to the api)."
    )


async def test_api_url_pointing_at_an_all_in_one_page(tmp_path: Path, doctor: DoctorRunner) -> None:
    # Under --role all the page is at / and the api at /api/: the doctor finds it there.
    with ExitStack() as stack:
        all_ = stack.enter_context(running_role("all", tmp_path, crawler_env()))
        web = stack.enter_context(running_role("web", tmp_path, {"API_URL": all_.url}))
        run = await doctor(web.url + "/", "--json")
    base = all_.url + "/"
    assert_stops_at_healthz(run, "API_URL leads to the web page, not the api")
    assert run.check("healthz")["problem"] == (
        f"API_URL points at the web page, not the api (the SynergyChat page answers GET {base}): the api "
        f"answers at {base}api/ (where --role all serves it), so set API_URL to {all_.url}/api."
    )


async def test_a_proxy_route_sending_api_to_the_web(
    tmp_path: Path, proxy: Proxy, doctor: DoctorRunner
) -> None:
    # A copy-pasted route: /api/ stripped and passed to the web, whose /healthz answers like the api's.
    with running_role("web", tmp_path, {"API_URL": "/api/"}) as web:
        entry = await proxy([("/api/", web.url), ("/", web.url)])
        run = await doctor(entry, "--json")
    origin = entry.rstrip("/")
    assert_stops_at_healthz(run, "API_URL leads to the web page, not the api")
    assert run.check("healthz")["problem"] == (
        f"API_URL /api/ leads to the web page, not the api (the SynergyChat page answers GET {origin}/api/): the "
        f"route for /api/ on {origin} sends it to the web; point that route at the api (nginx: location /api/ "
        "{ proxy_pass http://<api>/; })."
    )
