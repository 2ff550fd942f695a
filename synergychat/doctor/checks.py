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

from yarl import URL

from .api_hops import check_crawler, check_healthz, check_readyz
from .call_hops import check_cors, check_lb_root, check_messages, check_stream
from .http import Http
from .page_hops import check_api_url, check_csp, check_page
from .walk import Report, Walk


async def walk_through(walk: Walk) -> Report:
    """The hops in the order a browser meets them; a hop that leaves nothing to check ends the walk."""
    page = await check_page(walk)
    if page is None:
        walk.skip_rest("the page could not be read")
        return walk.report
    walk.report.api_url = page.api_url
    base = check_api_url(walk, page)
    if base is None:
        walk.skip_rest("there is no api URL to call")
        return walk.report
    walk.report.api_base = str(base)
    check_csp(walk, page, base)
    if (reason := await check_healthz(walk, page, base)) is not None:
        walk.skip_rest(reason)
        return walk.report
    readiness = await check_readyz(walk, base)
    check_crawler(walk, base, readiness)
    messages = await check_messages(walk, page, base)
    await check_stream(walk, page, base)
    await check_cors(walk, page, base, messages)
    await check_lb_root(walk, base)
    return walk.report


async def diagnose(
    page_url: str | URL, *, timeout: float = 5.0, insecure: bool = False, lb_check: bool = True
) -> Report:
    """Walk the deployment behind ``page_url``; never raises on network errors."""
    async with Http(timeout, insecure) as http:
        return await walk_through(Walk(http, URL(page_url), lb_check=lb_check))
