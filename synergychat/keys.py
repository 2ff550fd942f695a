"""Typed keys for what the apps keep on ``web.Application`` (one place, no string keys)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from .live import MessageHub
from .readiness import Readiness
from .settings import ApiSettings, WebSettings
from .storage import MessageStore
from .transport import CrawlerClient

API_SETTINGS = web.AppKey("api_settings", ApiSettings)
# Either database's store: what the api needs of it (a Protocol, so typed, not a class).
MESSAGE_STORE: web.AppKey[MessageStore] = web.AppKey("message_store")
MESSAGE_HUB = web.AppKey("message_hub", MessageHub)
CRAWLER_CLIENT = web.AppKey("crawler_client", CrawlerClient)
WEB_SETTINGS = web.AppKey("web_settings", WebSettings)
INDEX_HTML = web.AppKey("index_html", str)
STATIC_FILES = web.AppKey("static_files", dict[str, Path])
# Under `all`, the root app's /readyz answers for every part composed into it.
COMPOSED_READINESS: web.AppKey[Readiness] = web.AppKey("composed_readiness")
