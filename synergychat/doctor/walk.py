"""One walk of the doctor through a deployment: the report it builds, and what its hops share.

Each hop (page_hops, api_hops, call_hops) adds one Check to the walk's report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from yarl import URL

from .http import Answer, Http, Unreachable
from .page import PageKind

HOPS = ("page", "api-url", "csp", "healthz", "readyz", "crawler", "messages", "stream", "cors", "lb-root")


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


class Walk:
    """The HTTP client, the page asked about, and the report so far."""

    def __init__(self, http: Http, page_url: URL, *, lb_check: bool = True) -> None:
        self.http = http
        self.page_url = page_url
        self.lb_check = lb_check
        self.report = Report(page_url=str(page_url))
        # GET {base} without redirects, made once: it identifies the base and is the load balancer's probe.
        self._root: Answer | Unreachable | None = None

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

    async def root(self, base: URL) -> Answer | Unreachable:
        if self._root is None:
            try:
                # A load balancer's health check follows no redirect: neither does this request.
                self._root = await self.http.request("GET", base, follow_redirects=False)
            except Unreachable as err:
                self._root = err
        return self._root


def json_or_none(answer: Answer) -> Any:
    try:
        return answer.json()
    except ValueError:
        return None
