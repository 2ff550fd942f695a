"""What a bad answer usually means, as one sentence naming the setting to change.

Only the sentences several hops share live here; a hop's own sentence stays
next to the check that makes it (page_hops.py, api_hops.py, call_hops.py).
"""

from __future__ import annotations

from typing import NamedTuple

from yarl import URL

from .http import Answer, Failure, Unreachable
from .page import origin_of

NO_HEALTHY_UPSTREAM = "no healthy upstream"


class Advice(NamedTuple):
    problem: str
    # The setting the sentence tells to change; None when the fix is elsewhere (a proxy, a policy).
    variable: str | None = None


def page_not_served(answer: Answer) -> Advice:
    """The page URL answered, but not with 200."""
    if NO_HEALTHY_UPSTREAM in answer.text().lower():
        return Advice(
            f"The gateway in front of {answer.url} has no healthy backend for the page: the web pods are down "
            "or fail the load balancer's health check (point it at /healthz)."
        )
    if answer.status in (502, 503, 504):
        return Advice(
            f"The proxy in front of {answer.url} answered HTTP {answer.status}: the web role behind it is down, "
            "or the proxy's upstream port is not the web's WEB_PORT.",
            "WEB_PORT",
        )
    return Advice(
        f"{answer.url} answered HTTP {answer.status}, not the chat page: check the address, and that the "
        "proxy or route for it leads to the web role."
    )


def not_the_api(answer: Answer, url: URL, base: URL, page_url: URL, api_url: str) -> Advice:
    """An answer that should have come from the api at ``base`` did not."""
    same_origin = origin_of(base) == origin_of(page_url)
    path = base.path
    # The prefix route a proxy needs for a relative API_URL, in the course's nginx words.
    route = (
        f"add one that strips the prefix (nginx: location {path} {{ proxy_pass http://<api>/; }}), "
        "or set API_URL to the api's own address."
    )
    if NO_HEALTHY_UPSTREAM in answer.text().lower():
        return Advice(
            f'The gateway answered "no healthy upstream" for {url}: its load balancer\'s health check marks the '
            "api unhealthy (by default it probes GET / and needs a 200); point it at /healthz (on GKE a "
            "HealthCheckPolicy), or run an api that answers GET /."
        )
    if answer.status in (502, 503, 504):
        if same_origin:
            return Advice(
                f"The proxy in front of {origin_of(base)} answered HTTP {answer.status} for {url}: it routes "
                f"{path} but the api behind it is down or elsewhere; check the api runs and the route's upstream "
                "(host and API_PORT).",
                "API_PORT",
            )
        return Advice(
            f"{url} answered HTTP {answer.status}, a proxy's error: the api behind {origin_of(base)} is down "
            "or elsewhere; check the api runs and the upstream's port (API_PORT).",
            "API_PORT",
        )
    if answer.is_html:
        if same_origin:
            return Advice(
                f"{url} answered with a web page, not the api: requests for {path} reach the web, so no proxy "
                f"route sends {path} to the api; {route}",
                "API_URL",
            )
        return Advice(
            f"{url} answered with a web page, not the api: API_URL ({api_url}) points at a web server, "
            "not at the api.",
            "API_URL",
        )
    if answer.status == 404:
        if same_origin:
            return Advice(
                f"Nothing at {path} answers like the api (HTTP 404 for {url}): no proxy route sends {path} on "
                f"{origin_of(base)} to the api; {route}",
                "API_URL",
            )
        return Advice(
            f"{url} answered HTTP 404: API_URL ({api_url}) does not point at the api (wrong host, port or path?).",
            "API_URL",
        )
    return Advice(
        f"{url} answered {answer.summary()}, not what the api answers: check API_URL ({api_url}) and any "
        "proxy in front of the api.",
        "API_URL",
    )


def api_url_leads_to(
    what: str, answers: str, base: URL, page_url: URL, api_url: str, api_elsewhere: URL | None
) -> Advice:
    """The base API_URL resolves to is another role: ``what`` is "the crawler" or "the web page",
    ``answers`` what answered ``GET {base}``; ``api_elsewhere`` where the api answers, when found."""
    seen = f"{answers} answers GET {base}"
    if origin_of(base) == origin_of(page_url) and base.path != "/":
        # A path on the page's own server: whatever routes it there (a proxy) is what is wrong.
        path = base.path
        target = "the web" if what == "the web page" else what
        where = f"; the api answers at {api_elsewhere}" if api_elsewhere is not None else ""
        return Advice(
            f"API_URL {api_url} leads to {what}, not the api ({seen}): the route for {path} on "
            f"{origin_of(base)} sends it to {target}{where}; point that route at the api "
            f"(nginx: location {path} {{ proxy_pass http://<api>/; }}).",
            "API_URL",
        )
    if api_elsewhere is not None:
        same_origin = origin_of(api_elsewhere) == origin_of(page_url)
        value = (api_elsewhere.path if same_origin else str(api_elsewhere)).rstrip("/")
        return Advice(
            f"API_URL points at {what}, not the api ({seen}): the api answers at {api_elsewhere} "
            f"(where --role all serves it), so set API_URL to {value}.",
            "API_URL",
        )
    crawler_note = (
        "; the crawler's address belongs in the api's CRAWLER_BASE_URL, not in API_URL"
        if what == "the crawler"
        else ""
    )
    return Advice(
        f"API_URL points at {what}, not the api ({seen}): set it to the api's URL as the browser sees it "
        f"(the api's own address, or a path such as /api/ that a proxy routes to the api){crawler_note}.",
        "API_URL",
    )


def api_unreachable(err: Unreachable, url: URL, base: URL, page_url: URL) -> Advice:
    """The first call to the api got no HTTP answer at all."""
    where = f"{base.host}:{base.port}"
    if origin_of(base) == origin_of(page_url):
        return Advice(
            f"{url} did not answer ({err.reason}) although the page on the same address did: the proxy in "
            f"front of {origin_of(base)} cannot pass {base.path} to the api; check that route and that the api "
            "runs.",
            "API_URL",
        )
    if err.kind is Failure.DNS:
        return Advice(
            f"The host name {base.host} in API_URL does not resolve here: browsers elsewhere likely cannot "
            "resolve it either; add it to DNS (or /etc/hosts, as minikube's *.internal names need) or fix "
            "API_URL.",
            "API_URL",
        )
    if err.kind is Failure.REFUSED:
        return Advice(
            f"Nothing listens at {where}: start the api, or fix the port in API_URL (the port the api is "
            "published on; API_PORT inside its container).",
            "API_URL",
        )
    if err.kind is Failure.CERTIFICATE:
        return Advice(
            f"The api's TLS certificate is not trusted ({err.reason}): browsers will refuse its calls too; "
            "use a trusted certificate, or pass --insecure to check the rest."
        )
    if err.kind is Failure.TIMEOUT:
        return Advice(
            f"{url} did not answer ({err.reason}): a firewall, or a wrong host in API_URL?", "API_URL"
        )
    return Advice(
        f"{url} could not be reached ({err.reason}): check API_URL and that the api runs.", "API_URL"
    )


def api_answers_healthz_only(url: URL, err: Unreachable) -> Advice:
    """A later call to the api got no answer, although its healthz did."""
    return Advice(
        f"{url} did not answer ({err.reason}) although the api's healthz did: see the api's log, and any "
        "proxy timeout in front of it."
    )


def cors_refused(page_origin: str, evidence: str) -> Advice:
    return Advice(
        f"The api refuses the page's origin {page_origin} ({evidence}): the browser will block every call; add "
        f"{page_origin} to API_CORS_ORIGINS on the api, or leave API_CORS_ORIGINS unset to allow any origin.",
        "API_CORS_ORIGINS",
    )
