"""Find the api the load generator talks to, from the one URL it is given.

The URL is either the api's base URL or the chat page's. A page is read the
way a browser reads it (the doctor's page reading, doctor/page.py): our page's
JSON configuration, or the original page's ``app.js``; its API_URL is then
resolved against the page's URL. Anything that is not an HTML page is taken
for the api itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from yarl import URL

from ..doctor.page import (
    ConfigError,
    PageKind,
    api_url_from_config,
    api_url_from_original_script,
    origin_of,
    parse_page,
    resolve_api_base,
)

# The original page loads a handful of scripts; one of them names the api.
MAX_SCRIPTS_TO_READ = 5


class TargetError(Exception):
    """The URL answered, but no api can be found from it; the message says why."""


@dataclass(frozen=True)
class ApiTarget:
    base: URL  # ends with "/": endpoints are joined onto it
    page: URL | None  # the page it was found through, if any

    def endpoint(self, path: str) -> URL:
        return self.base.join(URL(path))


def as_base(url: URL) -> URL:
    return url.with_path(url.path.rstrip("/") + "/").with_query(None).with_fragment(None)


async def find_api(session: aiohttp.ClientSession, url: URL) -> ApiTarget:
    """Raises aiohttp.ClientError or TimeoutError when nothing answers, TargetError otherwise."""
    headers = {"Accept": "text/html,application/json;q=0.9"}
    # No redirects followed: the load goes where it was told, or nowhere.
    async with session.get(url, headers=headers, allow_redirects=False) as response:
        body = await response.text(errors="replace")
        is_html = response.content_type == "text/html"
        page_url = response.url
        location = response.headers.get("Location")
    if 300 <= response.status < 400:
        raise TargetError(
            f"{url} redirects (HTTP {response.status}) to {location}: give LOADGEN_TARGET_URL that URL"
        )
    if not is_html:
        return ApiTarget(as_base(url), None)
    if response.status != 200:
        raise TargetError(f"{page_url} answered HTTP {response.status} with an HTML page, not the chat")
    parts = parse_page(body)
    if parts.config_text is not None:
        try:
            api_url, kind = api_url_from_config(parts.config_text), PageKind.CONFIG
        except ConfigError as exc:
            raise TargetError(f"the page at {page_url} has a broken configuration: {exc}") from None
    else:
        found = await _original_api_url(session, page_url, parts.script_srcs)
        if found is None:
            raise TargetError(
                f"{page_url} is an HTML page but not the chat's (no API_URL in it or its app.js)"
            )
        api_url, kind = found, PageKind.ORIGINAL
    if not api_url:
        raise TargetError(f"the page at {page_url} has an empty API_URL: it can't chat, and neither can we")
    try:
        base = resolve_api_base(api_url, page_url, kind)
    except ValueError as exc:
        raise TargetError(f"the page's API_URL {api_url!r} is no URL a browser could call ({exc})") from None
    return ApiTarget(as_base(base), page_url)


async def _original_api_url(session: aiohttp.ClientSession, page_url: URL, srcs: list[str]) -> str | None:
    for src in srcs[:MAX_SCRIPTS_TO_READ]:
        try:
            script_url = page_url.join(URL(src))
        except ValueError:
            continue
        if origin_of(script_url) != origin_of(page_url):
            continue  # never fetch from another site: only the page's own scripts
        try:
            async with session.get(script_url, allow_redirects=False) as response:
                if (
                    response.status == 200
                    and (api_url := api_url_from_original_script(await response.text(errors="replace")))
                    is not None
                ):
                    return api_url
        except (TimeoutError, aiohttp.ClientError):
            continue
    return None
