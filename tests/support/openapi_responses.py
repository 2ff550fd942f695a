"""A pytest plugin: every response a test gets from the api or the crawler is checked
against their OpenAPI documents (``synergychat/openapi_documents``).

Each ``aiohttp.test_utils.TestClient`` (what ``aiohttp_client`` and the crawler's
fixtures build) whose app serves a document gets an aiohttp ``TraceConfig`` that
records the request, the status and headers, and the body if the test read it
whole (``read``, ``text``, ``json``). When the test ends, each recorded answer must
be documented: its status for that path and method, its content type, its required
headers, and its body against the schema. An undocumented path must be a JSON 404,
an undocumented method a JSON 405 with ``Allow`` (or the api's 403 for a cross-site
write, which comes first). A body a test streamed (the SSE stream, a ``/stats``
download read in pieces) is checked by status and content type only.

A violation fails the test that got it, naming the request and what is wrong.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import jsonschema_rs
import pytest
from aiohttp import ClientSession, TraceConfig, TraceRequestEndParams, TraceResponseChunkReceivedParams, web
from aiohttp.test_utils import TestClient

from synergychat.openapi import DOCUMENT_PATH, OpenApiDocument, Service, load_document

JSON_TYPES = ("application/json",)
# Statuses an undocumented path or method may get, before the router says 404 or 405:
# the api refuses a cross-site write with 403 whatever the path (cors.py).
ROUTING_REFUSALS = {403}


@dataclass
class Exchange:
    service: Service
    mount: str
    method: str
    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes | None = None

    @property
    def path(self) -> str:
        """The path as the document has it (without the mount's prefix)."""
        path = self.url.split("?", 1)[0]
        if self.mount == "/":
            return path
        return path[len(self.mount) :] or "/"

    def describe(self) -> str:
        return f"{self.method} {self.url} -> {self.status} ({self.service}'s document)"


@dataclass
class ResponseRecorder:
    exchanges: list[Exchange] = field(default_factory=list)

    def trace_config(self, mounts: list[tuple[str, Service]]) -> TraceConfig:
        config = TraceConfig()

        async def on_request_end(
            session: ClientSession, context: SimpleNamespace, params: TraceRequestEndParams
        ) -> None:
            url = params.url.path_qs
            for mount, service in mounts:
                if mount == "/" or url == mount or url.startswith(mount + "/"):
                    response = params.response
                    context.exchange = Exchange(
                        service, mount, params.method, url, response.status, dict(response.headers)
                    )
                    self.exchanges.append(context.exchange)
                    return

        async def on_chunk(
            session: ClientSession, context: SimpleNamespace, params: TraceResponseChunkReceivedParams
        ) -> None:
            # aiohttp sends this once, with the whole body, when the test reads it whole.
            exchange = getattr(context, "exchange", None)
            if exchange is not None:
                exchange.body = params.chunk

        config.on_request_end.append(on_request_end)
        config.on_response_chunk_received.append(on_chunk)
        return config


def documented_mounts(app: web.Application) -> list[tuple[str, Service]]:
    """Where in ``app`` a document is served, as (prefix, service); longest prefix first."""
    mounts: list[tuple[str, Service]] = []
    for resource in app.router.resources():
        info = resource.get_info()
        if isinstance(info.get("app"), web.Application):
            mounts += documented_mounts(info["app"])
            continue
        for route in resource:
            document = getattr(route.handler, "__self__", None)
            if isinstance(document, OpenApiDocument):
                prefix = resource.canonical.removesuffix(DOCUMENT_PATH) or "/"
                mounts.append((prefix, document.service))
    return sorted(mounts, key=lambda mount: len(mount[0]), reverse=True)


@functools.cache
def validator(service: Service, pointer: str) -> jsonschema_rs.Draft202012Validator:
    """A validator for the schema at ``pointer`` in the document (JSON Schema 2020-12, as
    OpenAPI 3.1's). Its root is the document itself plus a ``$ref`` to that schema, so the
    document's own references ("#/components/...") resolve; its other keys mean nothing to
    JSON Schema. jsonschema-rs: pages of 1,000 messages, checked in well under a millisecond."""
    schema = {**load_document(service), "$ref": f"#{pointer}"}
    return jsonschema_rs.Draft202012Validator(schema, validate_formats=True)


def escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def follow(document: Mapping[str, Any], node: Any) -> tuple[Any, str | None]:
    """``node``, or what its local ``$ref`` points at, and that pointer."""
    if isinstance(node, Mapping) and isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/"):
        pointer = node["$ref"][1:]
        target: Any = document
        for token in pointer.lstrip("/").split("/"):
            target = target[token.replace("~1", "/").replace("~0", "~")]
        return target, pointer
    return node, None


def violations(exchange: Exchange) -> Iterator[str]:
    document = load_document(exchange.service)
    path_item = document["paths"].get(exchange.path)
    method = "get" if exchange.method == "HEAD" else exchange.method.lower()
    if path_item is None or method not in path_item:
        yield from undocumented(exchange, path_item is None)
        return
    responses = path_item[method]["responses"]
    status = str(exchange.status)
    if status not in responses:
        yield f"status {status} is not documented (documented: {', '.join(responses)})"
        return
    response, pointer = follow(document, responses[status])
    if pointer is None:
        pointer = f"/paths/{escape(exchange.path)}/{method}/responses/{status}"
    for name, header in response.get("headers", {}).items():
        if header.get("required") and name.lower() not in {key.lower() for key in exchange.headers}:
            yield f"required header {name} is missing"
    content = response.get("content", {})
    media_type = content_type(exchange)
    if not content:
        if exchange.body:
            yield f"documented without a body, got {len(exchange.body)} bytes"
        return
    if media_type not in content:
        yield f"content type {media_type or '(none)'} is not documented (documented: {', '.join(content)})"
        return
    if exchange.method == "HEAD" or exchange.body is None or media_type not in JSON_TYPES:
        return  # not read whole by the test, or not JSON: status and type are what we can check
    try:
        body = json.loads(exchange.body)
    except ValueError as exc:
        yield f"the body is not JSON ({exc}): {exchange.body[:200]!r}"
        return
    schema_pointer = f"{pointer}/content/{escape(media_type)}/schema"
    for error in validator(exchange.service, schema_pointer).iter_errors(body):
        where = "/".join(str(part) for part in error.instance_path) or "(the body)"
        yield f"body at {where}: {error.message[:300]}"


def undocumented(exchange: Exchange, unknown_path: bool) -> Iterator[str]:
    expected = 404 if unknown_path else 405
    if exchange.status not in {expected, *ROUTING_REFUSALS}:
        what = "path" if unknown_path else f"method on {exchange.path}"
        yield f"undocumented {what}: expected a {expected} error, got {exchange.status}"
        return
    if exchange.status == 405 and "Allow" not in exchange.headers:
        yield "a 405 without an Allow header"
    if content_type(exchange) != "application/json":
        yield f"an error must be JSON, got {content_type(exchange) or '(no content type)'}"
    elif exchange.body is not None and exchange.method != "HEAD":
        try:
            body = json.loads(exchange.body)
        except ValueError:
            body = None
        if not (isinstance(body, dict) and isinstance(body.get("error"), str)):
            yield f'an error body must be {{"error": "..."}}, got {exchange.body[:200]!r}'


def content_type(exchange: Exchange) -> str:
    value = next((v for k, v in exchange.headers.items() if k.lower() == "content-type"), "")
    return value.split(";", 1)[0].strip().lower()


def report(exchanges: list[Exchange]) -> str | None:
    problems = []
    for exchange in exchanges:
        found = list(violations(exchange))
        if found:
            problems.append(exchange.describe() + "".join(f"\n    - {problem}" for problem in found))
    if not problems:
        return None
    return "responses not as synergychat/openapi_documents describe them:\n" + "\n".join(problems)


@pytest.fixture(autouse=True)
def openapi_conformance(monkeypatch: pytest.MonkeyPatch) -> Iterator[ResponseRecorder]:
    """Record what each TestClient of the api or the crawler gets; check it when the test ends."""
    recorder = ResponseRecorder()
    original_init = TestClient.__init__

    def init(self: TestClient[Any, Any], server: Any, **kwargs: Any) -> None:
        app = getattr(server, "app", None)
        mounts = documented_mounts(app) if isinstance(app, web.Application) else []
        if mounts:
            kwargs["trace_configs"] = [*kwargs.get("trace_configs", ()), recorder.trace_config(mounts)]
        original_init(self, server, **kwargs)

    monkeypatch.setattr(TestClient, "__init__", init)
    yield recorder
    problems = report(recorder.exchanges)
    if problems:
        pytest.fail(problems, pytrace=False)
