"""Forward one request to an upstream and stream its answer back: the core of the
test suite's stand-in proxies and gateways (event streams pass through live)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp
from aiohttp import web
from yarl import URL

# How often a relayed stream checks whether its client has gone (it would otherwise wait for the next event).
CLIENT_GONE_POLL_SECONDS = 0.2
# Headers a proxy must not forward (RFC 9110 hop-by-hop), plus what aiohttp recomputes.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


async def relay(
    request: web.Request, session: aiohttp.ClientSession, target: URL, extra_headers: Mapping[str, str]
) -> web.StreamResponse:
    """Send ``request`` to ``target``; 502 when the upstream can't be reached."""
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
    headers.update(extra_headers)
    response: web.StreamResponse | None = None
    try:
        async with session.request(
            request.method, target, headers=headers, data=await request.read(), allow_redirects=False
        ) as upstream:
            response = web.StreamResponse(status=upstream.status)
            for name, value in upstream.headers.items():
                if name.lower() not in HOP_BY_HOP:
                    response.headers.add(name, value)
            await response.prepare(request)
            while True:
                try:
                    chunk = await asyncio.wait_for(upstream.content.readany(), CLIENT_GONE_POLL_SECONDS)
                except TimeoutError:
                    if request.transport is None or request.transport.is_closing():
                        return response
                    continue
                if not chunk:
                    break
                await response.write(chunk)
            await response.write_eof()
            return response
    except (aiohttp.ClientConnectionError, ConnectionResetError):
        if response is not None and response.prepared:
            return response  # either side went away mid-stream: nothing left to relay
        return web.Response(status=502, text="502 Bad Gateway\n")
