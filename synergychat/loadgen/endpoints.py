"""The load generator's own endpoints: /metrics for Prometheus, probes, and the running summary."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from yarl import URL


async def serve_endpoints(
    port: int,
    registry: CollectorRegistry,
    api_base: Callable[[], URL | None],
    summary: Callable[[], dict[str, Any]],
) -> web.AppRunner:
    """Listen on ``port``; raises OSError when it can't. Clean up the returned runner to stop."""

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        # Ready once it knows where the api is: until then it generates no load.
        base = api_base()
        return web.json_response(
            {"ready": base is not None, "api": None if base is None else str(base)},
            status=200 if base is not None else 503,
        )

    async def describe(request: web.Request) -> web.Response:
        return web.json_response({"service": "synergychat-loadgen", **summary()})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/", describe)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, port=port).start()
    except OSError:
        await runner.cleanup()
        raise
    return runner
