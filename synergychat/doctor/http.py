"""The doctor's HTTP: one request per call, a bounded body, and network errors
turned into short phrases (never a traceback).
"""

from __future__ import annotations

import asyncio
import errno
import json
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Self

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from ..capped_body import read_capped
from ..version import version

# Enough for any page or message list the doctor needs to read; protects it from huge answers.
MAX_BODY_BYTES = 2_000_000
USER_AGENT = f"synergychat-doctor/{version()}"
# How much of a body a line of the report quotes.
SNIPPET_CHARS = 48


class Failure(StrEnum):
    REFUSED = "refused"
    DNS = "dns"
    TIMEOUT = "timeout"
    CERTIFICATE = "certificate"
    TLS = "tls"
    DISCONNECTED = "disconnected"
    OTHER = "other"


class Unreachable(Exception):
    """No HTTP answer at all: ``reason`` is a phrase fit for a sentence."""

    def __init__(self, reason: str, kind: Failure) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


@dataclass
class Answer:
    url: URL  # after any redirects
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes = b""
    redirects: list[URL] = field(default_factory=list)

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()

    @property
    def is_html(self) -> bool:
        if self.content_type in ("text/html", "application/xhtml+xml"):
            return True
        start = self.body.lstrip()[:15].lower()
        return start.startswith((b"<!doctype html", b"<html"))

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON; raises ValueError when it is not."""
        return json.loads(self.body.decode("utf-8"))

    def summary(self) -> str:
        """``HTTP 404, text/plain "404: Not Found"``: what was seen, short."""
        seen = f"HTTP {self.status}"
        if self.content_type:
            seen += f", {self.content_type}"
        if self.is_html or not self.body:
            return seen
        snippet = " ".join(self.text().split())
        if len(snippet) > SNIPPET_CHARS:
            snippet = snippet[: SNIPPET_CHARS - 1] + "…"
        return f"{seen} {snippet}" if self.content_type == "application/json" else f'{seen} "{snippet}"'


def describe_error(exc: BaseException, url: URL, timeout: float) -> Unreachable:
    where = f"{url.host}:{url.port}"
    if isinstance(exc, asyncio.TimeoutError):
        return Unreachable(f"no answer within {timeout:g} s", Failure.TIMEOUT)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return Unreachable(
            f"its TLS certificate is not trusted: {exc.certificate_error}", Failure.CERTIFICATE
        )
    if isinstance(exc, (aiohttp.ClientConnectorSSLError, aiohttp.ClientSSLError, ssl.SSLError)):
        return Unreachable(f"the TLS handshake with {where} failed", Failure.TLS)
    if isinstance(exc, aiohttp.ClientConnectorDNSError) or isinstance(
        getattr(exc, "os_error", None), socket.gaierror
    ):
        return Unreachable(f"the host name {url.host} does not resolve", Failure.DNS)
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if isinstance(os_error, ConnectionRefusedError) or os_error.errno == errno.ECONNREFUSED:
            return Unreachable(f"connection refused: nothing listens on {where}", Failure.REFUSED)
        return Unreachable(f"cannot connect to {where}: {os_error.strerror or os_error}", Failure.OTHER)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return Unreachable(f"{where} closed the connection without answering", Failure.DISCONNECTED)
    if isinstance(exc, aiohttp.TooManyRedirects):
        return Unreachable("too many redirects", Failure.OTHER)
    if isinstance(exc, aiohttp.InvalidURL):
        return Unreachable(f"{url} is not a valid URL", Failure.OTHER)
    if isinstance(exc, aiohttp.ClientResponseError):
        return Unreachable(f"a broken HTTP answer ({exc.message})", Failure.OTHER)
    return Unreachable(f"{type(exc).__name__}: {exc}".rstrip(": "), Failure.OTHER)


class Http:
    """A browser-like client: no cookies, no proxy from the environment, a total timeout per request."""

    def __init__(self, timeout: float, insecure: bool) -> None:
        self.timeout = timeout
        self._insecure = insecure
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            connector=aiohttp.TCPConnector(ssl=not self._insecure),
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": USER_AGENT},
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        url: URL,
        headers: Mapping[str, str] | None = None,
        *,
        follow_redirects: bool = True,
        read_body: bool = True,
    ) -> Answer:
        """Make one request; raise Unreachable when no HTTP answer came back."""
        assert self._session is not None
        try:
            async with self._session.request(
                method, url, headers=dict(headers or {}), allow_redirects=follow_redirects
            ) as response:
                body = (await read_capped(response.content, MAX_BODY_BYTES)).data if read_body else b""
                return Answer(
                    url=response.url,
                    status=response.status,
                    headers=response.headers,
                    body=body,
                    redirects=[previous.url for previous in response.history],
                )
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            raise describe_error(exc, url, self.timeout) from None
