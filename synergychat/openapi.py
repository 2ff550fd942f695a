"""The OpenAPI 3.1 documents of the api and the crawler, served at ``GET /openapi.json``.

The documents are data files in ``openapi_documents/``, read once, on the first
request. What differs from one server to another is where the service is mounted
(``/`` on its own port, ``/api`` or ``/crawler`` under ``ROLE=all``) and which of
the documented paths it serves there: ``/metrics`` is the process's, at the root of
its port, so the api's document served at ``/api/openapi.json`` leaves it out. The
answer's ``servers`` and ``paths`` say so.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

DOCUMENTS_DIR = Path(__file__).parent / "openapi_documents"
DOCUMENT_PATH = "/openapi.json"
Service = Literal["api", "crawler"]


@functools.cache
def load_document(service: Service) -> dict[str, Any]:
    """The document as shipped (every path, ``servers`` ``/``); tests check responses against it."""
    document: dict[str, Any] = json.loads((DOCUMENTS_DIR / f"{service}.json").read_text(encoding="utf-8"))
    return document


def mounted_at(request: web.Request) -> str:
    """Where the app answering ``request`` is mounted: ``/``, or a sub-app's prefix (``/api``)."""
    # A sub-app's routes carry its prefix ("/api/openapi.json"); the request's own path may
    # spell it differently and still match.
    resource = request.match_info.route.resource
    canonical = resource.canonical if resource is not None else DOCUMENT_PATH
    return canonical.removesuffix(DOCUMENT_PATH) or "/"


def routed_paths(app: web.Application, mount: str) -> frozenset[str]:
    """The paths ``app`` routes, as its document spells them (without the mount's prefix)."""
    prefix = "" if mount == "/" else mount
    return frozenset(resource.canonical.removeprefix(prefix) or "/" for resource in app.router.resources())


@functools.lru_cache(maxsize=16)
def document_body(service: Service, mount: str, routed: frozenset[str]) -> bytes:
    document = dict(load_document(service))
    document["servers"] = [
        {"url": mount, "description": f"this {service}, where the server that answered mounts it"}
    ]
    document["paths"] = {path: item for path, item in document["paths"].items() if path in routed}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class OpenApiDocument:
    """Serves ``service``'s document; ``serve`` is the handler (tests find apps by it)."""

    def __init__(self, service: Service) -> None:
        self.service = service

    async def serve(self, request: web.Request) -> web.Response:
        mount = mounted_at(request)
        body = document_body(self.service, mount, routed_paths(request.app, mount))
        return web.Response(body=body, content_type="application/json", charset="utf-8")


def openapi_handler(service: Service) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A handler serving ``service``'s document; register it at ``DOCUMENT_PATH``."""
    return OpenApiDocument(service).serve
