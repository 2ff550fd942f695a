"""The call hops: what the page's own calls meet (messages, the stream, CORS), and a load
balancer's health check on the api."""

from __future__ import annotations

from yarl import URL

from . import advice
from .http import Answer, Unreachable
from .page import origin_of
from .walk import Page, Status, Walk, json_or_none

# app.js polls an api without a stream this often (LEGACY_POLL_MS).
LEGACY_POLL_SECONDS = 5


async def check_messages(walk: Walk, page: Page, base: URL) -> Answer | None:
    url = base.join(URL("messages"))
    try:
        answer = await walk.http.request("GET", url, browser_headers(page, base, "application/json"))
    except Unreachable as err:
        walk.add("messages", Status.FAIL, url, err.reason, *advice.api_answers_healthz_only(url, err))
        return None
    body = json_or_none(answer)
    if answer.status == 200 and isinstance(body, list):
        if all(
            isinstance(m, dict)
            and isinstance(m.get("AuthorUsername"), str)
            and isinstance(m.get("Text"), str)
            for m in body
        ):
            walk.add("messages", Status.OK, url, f"HTTP 200, {len(body)} message{'s' * (len(body) != 1)}")
            return answer
        problem = f"{url} answered a list, but not of messages (AuthorUsername, Text): is API_URL the api's?"
        walk.add("messages", Status.FAIL, url, answer.summary(), problem, "API_URL")
        return None
    problem, variable = advice.not_the_api(answer, url, base, page.url, page.api_url)
    walk.add("messages", Status.FAIL, url, answer.summary(), problem, variable)
    return None


async def check_stream(walk: Walk, page: Page, base: URL) -> None:
    url = base.join(URL("messages/stream"))
    try:
        # Headers are all the doctor waits for: an event stream never ends.
        answer = await walk.http.request(
            "GET", url, browser_headers(page, base, "text/event-stream"), read_body=False
        )
    except Unreachable as err:
        walk.add("stream", Status.FAIL, url, err.reason, *advice.api_answers_healthz_only(url, err))
        return
    if answer.status == 200 and answer.content_type == "text/event-stream":
        walk.add("stream", Status.OK, url, "HTTP 200, text/event-stream")
    elif answer.status == 404:
        problem = (
            "The api has no messages/stream: fine for the original Go api, which the page polls every "
            f"{LEGACY_POLL_SECONDS} s; otherwise a proxy is not passing that path to the api."
        )
        walk.add("stream", Status.WARN, url, answer.summary(), problem)
    else:
        problem = (
            f"{url} answered {answer.summary()} instead of an event stream: new messages will not arrive "
            "live; check the proxy in front of the api passes messages/stream through (unbuffered)."
        )
        walk.add("stream", Status.FAIL, url, answer.summary(), problem)


async def check_cors(walk: Walk, page: Page, base: URL, messages: Answer | None) -> None:
    url = base.join(URL("messages"))
    page_origin = origin_of(page.url)
    if origin_of(base) == page_origin:
        walk.add(
            "cors", Status.OK, url, f"the page and the api share the origin {page_origin}: no CORS needed"
        )
        return
    headers = {
        "Origin": page_origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    try:
        # Browsers never follow a redirect on a preflight, so neither does the doctor.
        answer = await walk.http.request("OPTIONS", url, headers, follow_redirects=False)
    except Unreachable as err:
        walk.add(
            "cors",
            Status.FAIL,
            url,
            f"preflight: {err.reason}",
            *advice.api_answers_healthz_only(url, err),
        )
        return
    allow_origin = answer.headers.get("Access-Control-Allow-Origin")
    saw = f"preflight from {page_origin}: HTTP {answer.status}, Access-Control-Allow-Origin {allow_origin or 'absent'}"
    if 300 <= answer.status < 400:
        problem = (
            f"The preflight for {url} is redirected (HTTP {answer.status} to "
            f"{answer.headers.get('Location', '?')}): browsers refuse redirected preflights; set API_URL to "
            "the final address."
        )
        walk.add("cors", Status.FAIL, url, saw, problem, "API_URL")
        return
    refused = not (200 <= answer.status < 300) or allow_origin not in ("*", page_origin)
    if refused and (200 <= answer.status < 300 or answer.status == 403):
        evidence = f"its preflight answered HTTP {answer.status} without allowing it"
        walk.add("cors", Status.FAIL, url, saw, *advice.cors_refused(page_origin, evidence))
        return
    if refused:
        problem = (
            f"The preflight OPTIONS {url} answered HTTP {answer.status} without CORS headers: the browser "
            "will block every call; something in front of the api (a proxy?) answers OPTIONS itself, "
            "let it pass OPTIONS to the api."
        )
        walk.add("cors", Status.FAIL, url, saw, problem)
        return
    allowed_headers = {
        name.strip().lower() for name in answer.headers.get("Access-Control-Allow-Headers", "").split(",")
    }
    if not allowed_headers & {"content-type", "*"}:
        problem = (
            "The api's preflight answer does not allow the Content-Type header: the browser cannot post "
            "messages as JSON; check that a proxy does not replace the api's Access-Control-Allow-Headers."
        )
        walk.add("cors", Status.FAIL, url, saw, problem)
        return
    if messages is not None:
        got = messages.headers.get("Access-Control-Allow-Origin")
        if got not in ("*", page_origin):
            saw = f"GET messages from {page_origin}: Access-Control-Allow-Origin {got or 'absent'}"
            evidence = "its messages answer does not allow it"
            walk.add("cors", Status.FAIL, url, saw, *advice.cors_refused(page_origin, evidence))
            return
    walk.add("cors", Status.OK, url, f"{saw}; POST with Content-Type allowed")


async def check_lb_root(walk: Walk, base: URL) -> None:
    if not walk.lb_check:
        walk.add("lb-root", Status.SKIP, base, "not checked: --no-lb-check")
        return
    # A load balancer's health check follows no redirect: only a 200 counts.
    answer = await walk.root(base)
    if isinstance(answer, Unreachable):
        err = answer
        walk.add("lb-root", Status.FAIL, base, err.reason, *advice.api_answers_healthz_only(base, err))
        return
    if answer.status == 200:
        walk.add(
            "lb-root",
            Status.OK,
            base,
            f"{answer.summary()}: a load balancer's default GET / health check passes",
        )
        return
    problem = (
        f"The api answers HTTP {answer.status} on GET {base}: a load balancer's default health check probes "
        'GET / and needs a 200, so it would mark the api unhealthy ("no healthy upstream" on GKE); point '
        "the health check at /healthz (on GKE a HealthCheckPolicy) or run an api that answers GET /."
    )
    walk.add("lb-root", Status.FAIL, base, answer.summary(), problem)


def browser_headers(page: Page, base: URL, accept: str) -> dict[str, str]:
    headers = {"Accept": accept}
    # A browser sends Origin on every cross-origin fetch, and the api's CORS answer depends on it.
    if origin_of(base) != origin_of(page.url):
        headers["Origin"] = origin_of(page.url)
    return headers
