"""The api hops: does API_URL lead to the api (healthz, and who answers GET {base}), is it
ready (its database), and can it reach its crawler (as its readiness report says)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from yarl import URL

from . import advice
from .http import Unreachable
from .page import is_loopback_host, parse_page
from .walk import Page, Status, Walk, json_or_none

# The crawler's progress states (crawler.py) in which it counts no books: it cannot read its
# catalogue and keeps trying, or its crawl ended on an error and will not resume by itself.
CATALOGUE_TROUBLE_STATES = frozenset({"retrying"})
STOPPED_CRAWL_STATES = frozenset({"failed", "stopped"})
# What every role answers on GET /: {"service": "synergychat-api", ...}, "synergychat-crawler", ...
SERVICE_PREFIX = "synergychat-"
API_SERVICE = "synergychat-api"


@dataclass
class Impostor:
    """Another SynergyChat role found where the api should answer."""

    what: str  # "the crawler", "the web page": what API_URL leads to
    answers: str  # "synergychat-crawler", "the SynergyChat page": what answered GET {base}
    api_elsewhere: URL | None = None  # where the api does answer, when the doctor found it


async def check_healthz(walk: Walk, page: Page, base: URL) -> str | None:
    """None when the api answers; otherwise why the hops behind it are not checked."""
    url = base.join(URL("healthz"))
    try:
        answer = await walk.http.request("GET", url)
    except Unreachable as err:
        walk.add("healthz", Status.FAIL, url, err.reason, *advice.api_unreachable(err, url, base, page.url))
        return "the api did not answer its healthz"
    body = json_or_none(answer)
    if not (answer.status == 200 and isinstance(body, dict) and body.get("status") == "ok"):
        problem, variable = advice.not_the_api(answer, url, base, page.url, page.api_url)
        walk.add("healthz", Status.FAIL, url, answer.summary(), problem, variable)
        return "the api did not answer its healthz"
    # The web and the crawler answer healthz the same way: ask the base who it is.
    impostor = await _identify(walk, base)
    if impostor is None:
        walk.add("healthz", Status.OK, url, answer.summary())
        return None
    saw = f"{answer.summary()}; but GET {base} answers {impostor.answers}"
    walk.add(
        "healthz",
        Status.FAIL,
        url,
        saw,
        *advice.api_url_leads_to(
            impostor.what, impostor.answers, base, page.url, page.api_url, impostor.api_elsewhere
        ),
    )
    return f"API_URL leads to {impostor.what}, not the api"


async def _identify(walk: Walk, base: URL) -> Impostor | None:
    """Another role at ``base``, by what it answers on ``GET /``; None when it may be the api."""
    root = await walk.root(base)
    if isinstance(root, Unreachable) or root.status != 200:
        return None  # the original Go api answers 404 here: lb-root says what that means
    body = json_or_none(root)
    service = body.get("service") if isinstance(body, dict) else None
    if isinstance(service, str) and service.startswith(SERVICE_PREFIX) and service != API_SERVICE:
        return Impostor(f"the {service.removeprefix(SERVICE_PREFIX)}", service)
    if root.is_html and parse_page(root.text()).config_text is not None:
        return Impostor("the web page", "the SynergyChat page", await _api_under(walk, base))
    return None


async def _api_under(walk: Walk, base: URL) -> URL | None:
    """Under --role all the page is at / and the api at /api/: is the api there?"""
    url = base.join(URL("api/"))
    try:
        answer = await walk.http.request("GET", url, follow_redirects=False)
    except Unreachable:
        return None
    body = json_or_none(answer)
    if answer.status == 200 and isinstance(body, dict) and body.get("service") == API_SERVICE:
        return url
    return None


async def check_readyz(walk: Walk, base: URL) -> dict[str, Any] | None:
    url = base.join(URL("readyz"))
    try:
        answer = await walk.http.request("GET", url)
    except Unreachable as err:
        walk.add("readyz", Status.FAIL, url, err.reason, *advice.api_answers_healthz_only(url, err))
        return None
    body = json_or_none(answer)
    checks = body.get("checks") if isinstance(body, dict) else None
    if answer.status == 404:
        problem = (
            "The api has no readyz (the original Go api?): the doctor cannot ask it about its database "
            "and its crawler; the rest of the chat can still work."
        )
        walk.add("readyz", Status.WARN, url, answer.summary(), problem)
        return None
    if answer.status not in (200, 503) or not isinstance(checks, dict):
        problem = f"{url} answered {answer.summary()}, not the api's readiness report: check the api's log."
        walk.add("readyz", Status.FAIL, url, answer.summary(), problem)
        return None
    database = checks.get("database")
    if not isinstance(database, dict):
        database = {}
    # Our api answers states only (its log has the detail); older versions sent a detail.
    said = database.get("detail") or database.get("state")
    saw = f"HTTP {answer.status} {body.get('status')!s}; database: {said or '?'}"
    if database.get("ok") is not True:
        problem = (
            f"The api's database is not usable ({said or 'no detail'}): check "
            "API_DB_FILEPATH (a writable path; in Kubernetes on a volume, with fsGroup set)."
        )
        walk.add("readyz", Status.FAIL, url, saw, problem, "API_DB_FILEPATH")
    elif answer.status != 200:
        problem = f"The api says it is not ready ({answer.summary()}): check its log."
        walk.add("readyz", Status.FAIL, url, saw, problem)
    else:
        walk.add("readyz", Status.OK, url, saw)
    return checks


def check_crawler(walk: Walk, base: URL, readiness: dict[str, Any] | None) -> None:
    url = base.join(URL("readyz"))
    if readiness is None:
        walk.add("crawler", Status.SKIP, url, "not checked: the api gave no readiness report")
        return
    crawler = readiness.get("crawler")
    if not isinstance(crawler, dict):
        walk.add(
            "crawler",
            Status.WARN,
            url,
            "readyz says nothing about the crawler",
            "The api's readiness report has no crawler entry: it cannot tell whether /stats works.",
        )
        return
    state = crawler.get("state")
    location = crawler.get("location")
    detail = crawler.get("detail") or ""
    # The api keeps the crawler's address out of its public answer (older versions sent it).
    where = location if isinstance(location, str) and location else "CRAWLER_BASE_URL"
    if state == "not configured":
        problem = (
            "CRAWLER_BASE_URL is not set on the api: /stats answers that the crawler is not configured; "
            "set it to the crawler's address as the api sees it (http://crawler:8080 in compose, "
            "http://crawler-service in Kubernetes)."
        )
        walk.add("crawler", Status.WARN, url, "not configured", problem, "CRAWLER_BASE_URL")
        return
    if state != "ok" or crawler.get("ok") is not True:
        if location == "in-process":
            problem = (
                f"The crawler inside the api's process is not healthy ({detail or state}): see that "
                "process's log."
            )
            saw = f"in-process: {state}" + (f", {detail}" if detail else "")
            walk.add("crawler", Status.FAIL, url, saw, problem)
            return
        if where == "CRAWLER_BASE_URL":
            opening = (
                "The api cannot reach the crawler at its CRAWLER_BASE_URL (the api's log names the "
                "address and the error)"
            )
            loopback = True  # unknown: the reminder costs nothing
        else:
            opening = f"The api cannot reach the crawler at CRAWLER_BASE_URL={location}"
            loopback = is_loopback_host(_host_of(location))
        problem = (
            f"{opening}: check that the crawler is running and that CRAWLER_BASE_URL names it as the "
            "api's network sees it"
            + (" (in a container localhost is the api itself)" if loopback else "")
            + ", for example http://crawler:8080 in compose or http://crawler-service in Kubernetes."
        )
        saw = f"{where}: {state}" + (f", {detail}" if detail else "")
        walk.add("crawler", Status.FAIL, url, saw, problem, "CRAWLER_BASE_URL")
        return
    progress = crawler.get("progress")
    saw = f"{where}: reachable; {_describe_progress(progress)}"
    crawl_state = progress.get("state") if isinstance(progress, dict) else None
    crawl_state = crawl_state if isinstance(crawl_state, str) else None
    last_error = _last_error(progress) or "the crawler's log has the error"
    if crawl_state in CATALOGUE_TROUBLE_STATES:
        problem = (
            f"The crawler cannot read its catalogue ({last_error}): check CRAWLER_SOURCE_URL as the "
            "crawler's network sees it (the default, https://gutendex.com, needs a way out to the internet)."
        )
        walk.add("crawler", Status.WARN, url, saw, problem, "CRAWLER_SOURCE_URL")
    elif crawl_state in STOPPED_CRAWL_STATES:
        problem = (
            f"The crawler answers but its crawl has {crawl_state} ({last_error}): it counts no more books; "
            "see the crawler's log, and restart it once the cause is fixed."
        )
        walk.add("crawler", Status.WARN, url, saw, problem)
    else:
        walk.add("crawler", Status.OK, url, saw)


def _host_of(url: object) -> str | None:
    try:
        return URL(str(url or "")).host
    except ValueError:
        return None


def _describe_progress(progress: Any) -> str:
    if not isinstance(progress, dict):
        # The original crawler has no /status: reachable is all the api can tell.
        return "no crawl progress reported"
    return (
        f"crawl {progress.get('state', '?')}, {progress.get('books_counted', '?')} books counted, "
        f"{progress.get('pages_done', '?')} catalogue pages done"
    )


def _last_error(progress: Any) -> str | None:
    """The crawler's last error message: ``{"at": ..., "message": ...}`` in its /status, or a string."""
    error = progress.get("last_error") if isinstance(progress, dict) else None
    if isinstance(error, dict):
        error = error.get("message")
    return error if isinstance(error, str) and error else None
