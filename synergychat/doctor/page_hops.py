"""The page hops: the page a user opens, the API_URL it hands the browser, and its CSP."""

from __future__ import annotations

from yarl import URL

from . import advice
from .http import Failure, Unreachable
from .page import (
    ConfigError,
    PageKind,
    api_url_from_config,
    api_url_from_original_script,
    csp_blocking_directive,
    is_loopback_host,
    is_unspecified_host,
    looks_like_bare_host,
    origin_of,
    parse_page,
    resolve_api_base,
    same_machine_names,
    scheme_mistake,
)
from .walk import Page, Status, Walk

# The original page loads app.js; a page with more scripts than this is not one of ours.
MAX_SCRIPTS_TO_READ = 5


async def check_page(walk: Walk) -> Page | None:
    url = walk.page_url
    try:
        answer = await walk.http.request("GET", url, {"Accept": "text/html,*/*;q=0.8"})
    except Unreachable as err:
        if err.kind is Failure.CERTIFICATE:
            problem = (
                f"The page's TLS certificate is not trusted ({err.reason}): browsers warn before showing it; "
                "use a trusted certificate, or pass --insecure to check the rest."
            )
        else:
            problem = (
                f"Nothing answered at {url} ({err.reason}): check the address, that the web role is running, "
                "and that the published port or route leads to its WEB_PORT."
            )
        walk.add("page", Status.FAIL, url, err.reason, problem, "WEB_PORT")
        return None
    seen = answer.summary()
    if answer.redirects:
        seen += f" (redirected from {answer.redirects[0]})"
    if answer.status != 200:
        problem, variable = advice.page_not_served(answer)
        walk.add("page", Status.FAIL, answer.url, seen, problem, variable)
        return None

    parts = parse_page(answer.text())
    policies = list(answer.headers.getall("Content-Security-Policy", [])) + parts.meta_policies
    if parts.config_text is not None:
        try:
            api_url = api_url_from_config(parts.config_text)
        except ConfigError as exc:
            problem = (
                f"The page's configuration is broken: {exc}; the web role writes it from API_URL, "
                "so check that API_URL is plain text and that nothing rewrites the page."
            )
            walk.add("page", Status.FAIL, answer.url, seen, problem, "API_URL")
            return None
        walk.add("page", Status.OK, answer.url, f"{seen}, a SynergyChat page")
        return Page(answer.url, PageKind.CONFIG, api_url, policies)

    original = await _find_original_api_url(walk, answer.url, parts.script_srcs)
    if original is not None:
        walk.add("page", Status.OK, answer.url, f"{seen}, the original SynergyChat page (API_URL in app.js)")
        return Page(answer.url, PageKind.ORIGINAL, original, policies)

    if answer.content_type == "application/json" or answer.body.lstrip()[:1] in (b"{", b"["):
        problem = (
            f"{answer.url} answers JSON, not the chat page: it is probably the api's address; "
            "give the doctor the URL users open in their browser."
        )
    else:
        problem = (
            f"{answer.url} is not a SynergyChat page (no {'synergychat-config'} script, no app.js with "
            "apiUrl): check that the URL, or the proxy route for it, leads to the web role."
        )
    walk.add("page", Status.FAIL, answer.url, seen, problem)
    return None


async def _find_original_api_url(walk: Walk, page_url: URL, script_srcs: list[str]) -> str | None:
    for src in script_srcs[:MAX_SCRIPTS_TO_READ]:
        try:
            script_url = page_url.join(URL(src))
        except ValueError:
            continue  # the browser would not load it either
        if origin_of(script_url) != origin_of(page_url):
            continue  # a CDN script (tailwind, htmx) is never the page's own
        try:
            answer = await walk.http.request("GET", script_url)
        except Unreachable:
            continue
        if answer.status == 200 and (api_url := api_url_from_original_script(answer.text())) is not None:
            return api_url
    return None


# ---- API_URL as the browser resolves it ----------------------------------------


def check_api_url(walk: Walk, page: Page) -> URL | None:
    value = page.api_url
    shown = value or '""'
    if not value:
        problem = (
            "API_URL is empty: the page loads but cannot chat; set API_URL on the web role to the api's "
            "address as the browser sees it (a path such as /api/ that a proxy routes to the api, "
            "or http://<server>:8081)."
        )
        walk.add("api-url", Status.FAIL, None, 'API_URL is ""', problem, "API_URL")
        return None
    if (scheme := scheme_mistake(value)) is not None:
        problem = (
            f"API_URL is {value}, without http://: the browser reads {scheme!r} as a URL scheme and "
            f"cannot call it; write it as http://{value} (or https://)."
        )
        walk.add("api-url", Status.FAIL, None, f"API_URL {shown}", problem, "API_URL")
        return None
    try:
        base = resolve_api_base(value, page.url, page.kind)
    except ValueError as exc:
        problem = (
            f"API_URL is {value}, which the browser cannot turn into an http(s) URL ({exc}); fix API_URL."
        )
        walk.add("api-url", Status.FAIL, None, f"API_URL {shown}", problem, "API_URL")
        return None
    saw = f"API_URL {shown} resolves against the page to {base}"
    if page.kind is PageKind.ORIGINAL:
        saw += f" (the original page calls {base.join(URL('messages'))})"

    if looks_like_bare_host(value):
        problem = (
            f"API_URL is {value}, without http://: the browser takes it for a path next to the page "
            f"({base}); write http://{value} (or https://)."
        )
        walk.add("api-url", Status.FAIL, base, saw, problem, "API_URL")
        return None
    page_host, api_host = page.url.host, base.host
    if is_unspecified_host(api_host):
        problem = (
            f"API_URL is {value}: {api_host} is an address servers listen on, not one browsers can call; "
            "use the server's name, or a path such as /api/ that a proxy routes to the api."
        )
        walk.add("api-url", Status.FAIL, base, saw, problem, "API_URL")
    elif is_loopback_host(api_host) and not same_machine_names(api_host, page_host):
        problem = (
            f"API_URL is {value}: the browser of anyone not on the server will call its own machine; "
            "set API_URL to an address other machines reach (the server's name, or a path such as /api/ "
            "that a proxy routes to the api)."
        )
        walk.add("api-url", Status.FAIL, base, saw, problem, "API_URL")
    elif page.url.scheme == "https" and base.scheme == "http":
        problem = (
            f"The page is served over https but API_URL is {value}: browsers block these mixed-content "
            "calls; use an https:// API_URL, or a path such as /api/ served by the same proxy."
        )
        walk.add("api-url", Status.FAIL, base, saw, problem, "API_URL")
    else:
        walk.add("api-url", Status.OK, base, saw)
    return base


def check_csp(walk: Walk, page: Page, base: URL) -> None:
    target = base.join(URL("messages"))
    if not page.policies:
        walk.add("csp", Status.OK, page.url, "no Content-Security-Policy: the page may connect anywhere")
        return
    blocking = csp_blocking_directive(page.policies, page.url, target)
    if blocking is None:
        walk.add(
            "csp",
            Status.OK,
            page.url,
            f"Content-Security-Policy allows connecting to {origin_of(target)}",
        )
        return
    problem = (
        f"The page's Content-Security-Policy ({blocking}) does not let the browser connect to "
        f"{origin_of(target)}: every call to the api will be refused; the web role allows API_URL's origin, "
        "so remove or widen a Content-Security-Policy that a proxy adds, or make API_URL match it."
    )
    walk.add("csp", Status.FAIL, page.url, f"Content-Security-Policy: {blocking}", problem, "API_URL")
