"""A stand-in for a Gateway API implementation, driven by our rendered HTTPRoutes.

No cluster runs here, so the routes are applied by this small reverse proxy:
hostname match, then the longest PathPrefix, then ``URLRewrite``
``ReplacePrefixMatch``, to a Service's port, which the test maps to the
address where that Service's pod listens. A rule with no backend is answered
by the gateway itself with a 500, as the Gateway API requires (our routes keep
/metrics from the internet that way). It streams responses, so the push
channel works through it as through Envoy or Google's load balancer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from tests.support.relay import relay


@dataclass(frozen=True)
class Rule:
    hostnames: tuple[str, ...]  # empty: any host
    prefix: str
    rewrite_prefix: str | None
    service: str | None  # None: a rule with no backend
    port: int


def prefix_matches(prefix: str, path: str) -> bool:
    # Gateway API PathPrefix matches whole path elements: /api matches /api and /api/x, not /apix.
    prefix = prefix.rstrip("/")
    return not prefix or path == prefix or path.startswith(prefix + "/")


def replace_prefix(prefix: str, replacement: str, path: str) -> str:
    rest = path[len(prefix.rstrip("/")) :]
    if replacement.endswith("/") and rest.startswith("/"):
        rest = rest[1:]
    return (replacement + rest) or "/"


def rules_from(routes: Iterable[Mapping[str, Any]]) -> list[Rule]:
    rules = []
    for route in routes:
        hostnames = tuple(route["spec"].get("hostnames", ()))
        for rule in route["spec"]["rules"]:
            rewrite = None
            for filter_ in rule.get("filters", ()):
                if filter_["type"] == "URLRewrite":
                    path = filter_["urlRewrite"]["path"]
                    assert path["type"] == "ReplacePrefixMatch", path
                    rewrite = path["replacePrefixMatch"]
            # One backend per rule in our manifests, or none at all.
            (backend,) = rule.get("backendRefs") or [{"name": None, "port": 0}]
            for match in rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]:
                assert match["path"]["type"] == "PathPrefix", match
                rules.append(
                    Rule(hostnames, match["path"]["value"], rewrite, backend["name"], backend["port"])
                )
    return rules


def route(rules: list[Rule], host: str, path: str) -> tuple[Rule, str] | None:
    """The rule a request takes and the path the backend sees, or None (a 404 at the gateway)."""
    candidates = [
        rule
        for rule in rules
        if (not rule.hostnames or host in rule.hostnames) and prefix_matches(rule.prefix, path)
    ]
    if not candidates:
        return None
    # Exact host names win over catch-alls, then the longest prefix.
    best = max(candidates, key=lambda rule: (bool(rule.hostnames), len(rule.prefix.rstrip("/"))))
    if best.rewrite_prefix is None:
        return best, path
    return best, replace_prefix(best.prefix, best.rewrite_prefix, path)


@asynccontextmanager
async def serve_gateway(rules: list[Rule], backends: Mapping[tuple[str, int], str]) -> AsyncIterator[str]:
    """Serve the routes on 127.0.0.1; ``backends`` maps (Service, port) to ``http://127.0.0.1:N``."""
    # No pooled connections: a replaced pod must not be reached on a stale one.
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=True),
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=None),
    )

    async def proxy(request: web.Request) -> web.StreamResponse:
        host = (request.host or "").rsplit(":", 1)[0]
        found = route(rules, host, request.path)
        if found is None:
            return web.Response(status=404, text=f"no route for {host}{request.path}")
        rule, path = found
        if rule.service is None:
            return web.Response(status=500, text=f"no backend for {host}{request.path}")
        target = URL(backends[(rule.service, rule.port)]).with_path(path).with_query(request.query_string)
        return await relay(request, session, target, {"Host": request.host})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
        await session.close()
