"""The doctor's hops: walk a deployment the way a browser (and a load balancer) meets it.

page → the API_URL it hands the browser → the page's CSP → the api's healthz,
readyz (database, and the crawler at CRAWLER_BASE_URL), messages, messages/stream
→ CORS for the page's origin → a load balancer's ``GET /`` on the api.

Every role describes itself on ``GET /`` (the crawler as ``{"service":
"synergychat-crawler"}``, the web with the chat page), and the web and crawler
answer ``/healthz`` like the api does: so when healthz passes, the doctor also
asks the base who it is, and an API_URL that leads to another role fails there.

Each hop adds one Check. A failed hop carries one sentence: what is probably
wrong and which setting to change. When the api does not answer like the api,
the hops after it are skipped: their failures would only repeat the first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from yarl import URL

from . import advice
from .http import Answer, Failure, Http, Unreachable
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

HOPS = ("page", "api-url", "csp", "healthz", "readyz", "crawler", "messages", "stream", "cors", "lb-root")
# The original page loads app.js; a page with more scripts than this is not one of ours.
MAX_SCRIPTS_TO_READ = 5
# app.js polls an api without a stream this often (LEGACY_POLL_MS).
LEGACY_POLL_SECONDS = 5
# The crawler's progress states (crawler.py) in which it counts no books: it cannot read its
# catalogue and keeps trying, or its crawl ended on an error and will not resume by itself.
CATALOGUE_TROUBLE_STATES = frozenset({"retrying"})
STOPPED_CRAWL_STATES = frozenset({"failed", "stopped"})
# What every role answers on GET /: {"service": "synergychat-api", ...}, "synergychat-crawler", ...
SERVICE_PREFIX = "synergychat-"
API_SERVICE = "synergychat-api"


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass
class Check:
    name: str
    status: Status
    url: str | None
    saw: str
    # One sentence: what is probably wrong, and what to change. Only for warn and fail.
    problem: str | None = None
    # The setting that sentence tells to change, for scripts.
    variable: str | None = None


@dataclass
class Report:
    page_url: str
    api_url: str | None = None
    api_base: str | None = None
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.status is not Status.FAIL for check in self.checks)

    def counts(self) -> dict[str, int]:
        return {status.value: sum(c.status is status for c in self.checks) for status in Status}

    def to_json(self) -> dict[str, Any]:
        return {
            "page_url": self.page_url,
            "api_url": self.api_url,
            "api_base": self.api_base,
            "ok": self.ok,
            "counts": self.counts(),
            "checks": [{**asdict(check), "status": check.status.value} for check in self.checks],
        }


@dataclass
class Page:
    url: URL  # after redirects: what the browser resolves API_URL against
    kind: PageKind
    api_url: str
    policies: list[str]


@dataclass
class Impostor:
    """Another SynergyChat role found where the api should answer."""

    what: str  # "the crawler", "the web page": what API_URL leads to
    answers: str  # "synergychat-crawler", "the SynergyChat page": what answered GET {base}
    api_elsewhere: URL | None = None  # where the api does answer, when the doctor found it


class Doctor:
    def __init__(self, http: Http, page_url: URL, *, lb_check: bool = True) -> None:
        self.http = http
        self.page_url = page_url
        self.lb_check = lb_check
        self.report = Report(page_url=str(page_url))
        # GET {base} without redirects, made once: it identifies the base and is the load balancer's probe.
        self._root: Answer | Unreachable | None = None

    # ---- bookkeeping ---------------------------------------------------------------

    def add(
        self,
        name: str,
        status: Status,
        url: URL | str | None,
        saw: str,
        problem: str | None = None,
        variable: str | None = None,
    ) -> None:
        self.report.checks.append(
            Check(name, status, str(url) if url is not None else None, saw, problem, variable)
        )

    def skip_rest(self, reason: str) -> None:
        done = {check.name for check in self.report.checks}
        for name in HOPS:
            if name not in done:
                self.add(name, Status.SKIP, None, f"not checked: {reason}")

    async def run(self) -> Report:
        page = await self.check_page()
        if page is None:
            self.skip_rest("the page could not be read")
            return self.report
        self.report.api_url = page.api_url
        base = self.check_api_url(page)
        if base is None:
            self.skip_rest("there is no api URL to call")
            return self.report
        self.report.api_base = str(base)
        self.check_csp(page, base)
        if (reason := await self.check_healthz(page, base)) is not None:
            self.skip_rest(reason)
            return self.report
        readiness = await self.check_readyz(base)
        self.check_crawler(base, readiness)
        messages = await self.check_messages(page, base)
        await self.check_stream(page, base)
        await self.check_cors(page, base, messages)
        await self.check_lb_root(base)
        return self.report

    # ---- the page --------------------------------------------------------------------

    async def check_page(self) -> Page | None:
        url = self.page_url
        try:
            answer = await self.http.request("GET", url, {"Accept": "text/html,*/*;q=0.8"})
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
            self.add("page", Status.FAIL, url, err.reason, problem, "WEB_PORT")
            return None
        seen = answer.summary()
        if answer.redirects:
            seen += f" (redirected from {answer.redirects[0]})"
        if answer.status != 200:
            problem, variable = advice.page_not_served(answer)
            self.add("page", Status.FAIL, answer.url, seen, problem, variable)
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
                self.add("page", Status.FAIL, answer.url, seen, problem, "API_URL")
                return None
            self.add("page", Status.OK, answer.url, f"{seen}, a SynergyChat page")
            return Page(answer.url, PageKind.CONFIG, api_url, policies)

        original = await self._find_original_api_url(answer.url, parts.script_srcs)
        if original is not None:
            self.add(
                "page", Status.OK, answer.url, f"{seen}, the original SynergyChat page (API_URL in app.js)"
            )
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
        self.add("page", Status.FAIL, answer.url, seen, problem)
        return None

    async def _find_original_api_url(self, page_url: URL, script_srcs: list[str]) -> str | None:
        for src in script_srcs[:MAX_SCRIPTS_TO_READ]:
            try:
                script_url = page_url.join(URL(src))
            except ValueError:
                continue  # the browser would not load it either
            if origin_of(script_url) != origin_of(page_url):
                continue  # a CDN script (tailwind, htmx) is never the page's own
            try:
                answer = await self.http.request("GET", script_url)
            except Unreachable:
                continue
            if answer.status == 200 and (api_url := api_url_from_original_script(answer.text())) is not None:
                return api_url
        return None

    # ---- API_URL as the browser resolves it ----------------------------------------

    def check_api_url(self, page: Page) -> URL | None:
        value = page.api_url
        shown = value or '""'
        if not value:
            problem = (
                "API_URL is empty: the page loads but cannot chat; set API_URL on the web role to the api's "
                "address as the browser sees it (a path such as /api/ that a proxy routes to the api, "
                "or http://<server>:8081)."
            )
            self.add("api-url", Status.FAIL, None, 'API_URL is ""', problem, "API_URL")
            return None
        if (scheme := scheme_mistake(value)) is not None:
            problem = (
                f"API_URL is {value}, without http://: the browser reads {scheme!r} as a URL scheme and "
                f"cannot call it; write it as http://{value} (or https://)."
            )
            self.add("api-url", Status.FAIL, None, f"API_URL {shown}", problem, "API_URL")
            return None
        try:
            base = resolve_api_base(value, page.url, page.kind)
        except ValueError as exc:
            problem = (
                f"API_URL is {value}, which the browser cannot turn into an http(s) URL ({exc}); fix API_URL."
            )
            self.add("api-url", Status.FAIL, None, f"API_URL {shown}", problem, "API_URL")
            return None
        saw = f"API_URL {shown} resolves against the page to {base}"
        if page.kind is PageKind.ORIGINAL:
            saw += f" (the original page calls {base.join(URL('messages'))})"

        if looks_like_bare_host(value):
            problem = (
                f"API_URL is {value}, without http://: the browser takes it for a path next to the page "
                f"({base}); write http://{value} (or https://)."
            )
            self.add("api-url", Status.FAIL, base, saw, problem, "API_URL")
            return None
        page_host, api_host = page.url.host, base.host
        if is_unspecified_host(api_host):
            problem = (
                f"API_URL is {value}: {api_host} is an address servers listen on, not one browsers can call; "
                "use the server's name, or a path such as /api/ that a proxy routes to the api."
            )
            self.add("api-url", Status.FAIL, base, saw, problem, "API_URL")
        elif is_loopback_host(api_host) and not same_machine_names(api_host, page_host):
            problem = (
                f"API_URL is {value}: the browser of anyone not on the server will call its own machine; "
                "set API_URL to an address other machines reach (the server's name, or a path such as /api/ "
                "that a proxy routes to the api)."
            )
            self.add("api-url", Status.FAIL, base, saw, problem, "API_URL")
        elif page.url.scheme == "https" and base.scheme == "http":
            problem = (
                f"The page is served over https but API_URL is {value}: browsers block these mixed-content "
                "calls; use an https:// API_URL, or a path such as /api/ served by the same proxy."
            )
            self.add("api-url", Status.FAIL, base, saw, problem, "API_URL")
        else:
            self.add("api-url", Status.OK, base, saw)
        return base

    def check_csp(self, page: Page, base: URL) -> None:
        target = base.join(URL("messages"))
        if not page.policies:
            self.add("csp", Status.OK, page.url, "no Content-Security-Policy: the page may connect anywhere")
            return
        blocking = csp_blocking_directive(page.policies, page.url, target)
        if blocking is None:
            self.add(
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
        self.add("csp", Status.FAIL, page.url, f"Content-Security-Policy: {blocking}", problem, "API_URL")

    # ---- the api ---------------------------------------------------------------------

    async def check_healthz(self, page: Page, base: URL) -> str | None:
        """None when the api answers; otherwise why the hops behind it are not checked."""
        url = base.join(URL("healthz"))
        try:
            answer = await self.http.request("GET", url)
        except Unreachable as err:
            self.add(
                "healthz", Status.FAIL, url, err.reason, *advice.api_unreachable(err, url, base, page.url)
            )
            return "the api did not answer its healthz"
        body = _json_or_none(answer)
        if not (answer.status == 200 and isinstance(body, dict) and body.get("status") == "ok"):
            problem, variable = advice.not_the_api(answer, url, base, page.url, page.api_url)
            self.add("healthz", Status.FAIL, url, answer.summary(), problem, variable)
            return "the api did not answer its healthz"
        # The web and the crawler answer healthz the same way: ask the base who it is.
        impostor = await self._identify(base)
        if impostor is None:
            self.add("healthz", Status.OK, url, answer.summary())
            return None
        saw = f"{answer.summary()}; but GET {base} answers {impostor.answers}"
        self.add(
            "healthz",
            Status.FAIL,
            url,
            saw,
            *advice.api_url_leads_to(
                impostor.what, impostor.answers, base, page.url, page.api_url, impostor.api_elsewhere
            ),
        )
        return f"API_URL leads to {impostor.what}, not the api"

    async def _get_root(self, base: URL) -> Answer | Unreachable:
        if self._root is None:
            try:
                # A load balancer's health check follows no redirect: neither does this request.
                self._root = await self.http.request("GET", base, follow_redirects=False)
            except Unreachable as err:
                self._root = err
        return self._root

    async def _identify(self, base: URL) -> Impostor | None:
        """Another role at ``base``, by what it answers on ``GET /``; None when it may be the api."""
        root = await self._get_root(base)
        if isinstance(root, Unreachable) or root.status != 200:
            return None  # the original Go api answers 404 here: lb-root says what that means
        body = _json_or_none(root)
        service = body.get("service") if isinstance(body, dict) else None
        if isinstance(service, str) and service.startswith(SERVICE_PREFIX) and service != API_SERVICE:
            return Impostor(f"the {service.removeprefix(SERVICE_PREFIX)}", service)
        if root.is_html and parse_page(root.text()).config_text is not None:
            return Impostor("the web page", "the SynergyChat page", await self._api_under(base))
        return None

    async def _api_under(self, base: URL) -> URL | None:
        """Under --role all the page is at / and the api at /api/: is the api there?"""
        url = base.join(URL("api/"))
        try:
            answer = await self.http.request("GET", url, follow_redirects=False)
        except Unreachable:
            return None
        body = _json_or_none(answer)
        if answer.status == 200 and isinstance(body, dict) and body.get("service") == API_SERVICE:
            return url
        return None

    async def check_readyz(self, base: URL) -> dict[str, Any] | None:
        url = base.join(URL("readyz"))
        try:
            answer = await self.http.request("GET", url)
        except Unreachable as err:
            self.add("readyz", Status.FAIL, url, err.reason, *advice.api_answers_healthz_only(url, err))
            return None
        body = _json_or_none(answer)
        checks = body.get("checks") if isinstance(body, dict) else None
        if answer.status == 404:
            problem = (
                "The api has no readyz (the original Go api?): the doctor cannot ask it about its database "
                "and its crawler; the rest of the chat can still work."
            )
            self.add("readyz", Status.WARN, url, answer.summary(), problem)
            return None
        if answer.status not in (200, 503) or not isinstance(checks, dict):
            problem = (
                f"{url} answered {answer.summary()}, not the api's readiness report: check the api's log."
            )
            self.add("readyz", Status.FAIL, url, answer.summary(), problem)
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
            self.add("readyz", Status.FAIL, url, saw, problem, "API_DB_FILEPATH")
        elif answer.status != 200:
            problem = f"The api says it is not ready ({answer.summary()}): check its log."
            self.add("readyz", Status.FAIL, url, saw, problem)
        else:
            self.add("readyz", Status.OK, url, saw)
        return checks

    def check_crawler(self, base: URL, readiness: dict[str, Any] | None) -> None:
        url = base.join(URL("readyz"))
        if readiness is None:
            self.add("crawler", Status.SKIP, url, "not checked: the api gave no readiness report")
            return
        crawler = readiness.get("crawler")
        if not isinstance(crawler, dict):
            self.add(
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
            self.add("crawler", Status.WARN, url, "not configured", problem, "CRAWLER_BASE_URL")
            return
        if state != "ok" or crawler.get("ok") is not True:
            if location == "in-process":
                problem = (
                    f"The crawler inside the api's process is not healthy ({detail or state}): see that "
                    "process's log."
                )
                saw = f"in-process: {state}" + (f", {detail}" if detail else "")
                self.add("crawler", Status.FAIL, url, saw, problem)
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
            self.add("crawler", Status.FAIL, url, saw, problem, "CRAWLER_BASE_URL")
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
            self.add("crawler", Status.WARN, url, saw, problem, "CRAWLER_SOURCE_URL")
        elif crawl_state in STOPPED_CRAWL_STATES:
            problem = (
                f"The crawler answers but its crawl has {crawl_state} ({last_error}): it counts no more books; "
                "see the crawler's log, and restart it once the cause is fixed."
            )
            self.add("crawler", Status.WARN, url, saw, problem)
        else:
            self.add("crawler", Status.OK, url, saw)

    async def check_messages(self, page: Page, base: URL) -> Answer | None:
        url = base.join(URL("messages"))
        try:
            answer = await self.http.request("GET", url, _browser_headers(page, base, "application/json"))
        except Unreachable as err:
            self.add("messages", Status.FAIL, url, err.reason, *advice.api_answers_healthz_only(url, err))
            return None
        body = _json_or_none(answer)
        if answer.status == 200 and isinstance(body, list):
            if all(
                isinstance(m, dict)
                and isinstance(m.get("AuthorUsername"), str)
                and isinstance(m.get("Text"), str)
                for m in body
            ):
                self.add("messages", Status.OK, url, f"HTTP 200, {len(body)} message{'s' * (len(body) != 1)}")
                return answer
            problem = (
                f"{url} answered a list, but not of messages (AuthorUsername, Text): is API_URL the api's?"
            )
            self.add("messages", Status.FAIL, url, answer.summary(), problem, "API_URL")
            return None
        problem, variable = advice.not_the_api(answer, url, base, page.url, page.api_url)
        self.add("messages", Status.FAIL, url, answer.summary(), problem, variable)
        return None

    async def check_stream(self, page: Page, base: URL) -> None:
        url = base.join(URL("messages/stream"))
        try:
            # Headers are all the doctor waits for: an event stream never ends.
            answer = await self.http.request(
                "GET", url, _browser_headers(page, base, "text/event-stream"), read_body=False
            )
        except Unreachable as err:
            self.add("stream", Status.FAIL, url, err.reason, *advice.api_answers_healthz_only(url, err))
            return
        if answer.status == 200 and answer.content_type == "text/event-stream":
            self.add("stream", Status.OK, url, "HTTP 200, text/event-stream")
        elif answer.status == 404:
            problem = (
                "The api has no messages/stream: fine for the original Go api, which the page polls every "
                f"{LEGACY_POLL_SECONDS} s; otherwise a proxy is not passing that path to the api."
            )
            self.add("stream", Status.WARN, url, answer.summary(), problem)
        else:
            problem = (
                f"{url} answered {answer.summary()} instead of an event stream: new messages will not arrive "
                "live; check the proxy in front of the api passes messages/stream through (unbuffered)."
            )
            self.add("stream", Status.FAIL, url, answer.summary(), problem)

    async def check_cors(self, page: Page, base: URL, messages: Answer | None) -> None:
        url = base.join(URL("messages"))
        page_origin = origin_of(page.url)
        if origin_of(base) == page_origin:
            self.add(
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
            answer = await self.http.request("OPTIONS", url, headers, follow_redirects=False)
        except Unreachable as err:
            self.add(
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
            self.add("cors", Status.FAIL, url, saw, problem, "API_URL")
            return
        refused = not (200 <= answer.status < 300) or allow_origin not in ("*", page_origin)
        if refused and (200 <= answer.status < 300 or answer.status == 403):
            evidence = f"its preflight answered HTTP {answer.status} without allowing it"
            self.add("cors", Status.FAIL, url, saw, *advice.cors_refused(page_origin, evidence))
            return
        if refused:
            problem = (
                f"The preflight OPTIONS {url} answered HTTP {answer.status} without CORS headers: the browser "
                "will block every call; something in front of the api (a proxy?) answers OPTIONS itself, "
                "let it pass OPTIONS to the api."
            )
            self.add("cors", Status.FAIL, url, saw, problem)
            return
        allowed_headers = {
            name.strip().lower() for name in answer.headers.get("Access-Control-Allow-Headers", "").split(",")
        }
        if not allowed_headers & {"content-type", "*"}:
            problem = (
                "The api's preflight answer does not allow the Content-Type header: the browser cannot post "
                "messages as JSON; check that a proxy does not replace the api's Access-Control-Allow-Headers."
            )
            self.add("cors", Status.FAIL, url, saw, problem)
            return
        if messages is not None:
            got = messages.headers.get("Access-Control-Allow-Origin")
            if got not in ("*", page_origin):
                saw = f"GET messages from {page_origin}: Access-Control-Allow-Origin {got or 'absent'}"
                evidence = "its messages answer does not allow it"
                self.add("cors", Status.FAIL, url, saw, *advice.cors_refused(page_origin, evidence))
                return
        self.add("cors", Status.OK, url, f"{saw}; POST with Content-Type allowed")

    async def check_lb_root(self, base: URL) -> None:
        if not self.lb_check:
            self.add("lb-root", Status.SKIP, base, "not checked: --no-lb-check")
            return
        # A load balancer's health check follows no redirect: only a 200 counts.
        answer = await self._get_root(base)
        if isinstance(answer, Unreachable):
            err = answer
            self.add("lb-root", Status.FAIL, base, err.reason, *advice.api_answers_healthz_only(base, err))
            return
        if answer.status == 200:
            self.add(
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
        self.add("lb-root", Status.FAIL, base, answer.summary(), problem)


# ---- helpers ---------------------------------------------------------------------------


def _host_of(url: object) -> str | None:
    try:
        return URL(str(url or "")).host
    except ValueError:
        return None


def _json_or_none(answer: Answer) -> Any:
    try:
        return answer.json()
    except ValueError:
        return None


def _browser_headers(page: Page, base: URL, accept: str) -> dict[str, str]:
    headers = {"Accept": accept}
    # A browser sends Origin on every cross-origin fetch, and the api's CORS answer depends on it.
    if origin_of(base) != origin_of(page.url):
        headers["Origin"] = origin_of(page.url)
    return headers


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


async def diagnose(
    page_url: str | URL, *, timeout: float = 5.0, insecure: bool = False, lb_check: bool = True
) -> Report:
    """Walk the deployment behind ``page_url``; never raises on network errors."""
    async with Http(timeout, insecure) as http:
        return await Doctor(http, URL(page_url), lb_check=lb_check).run()
