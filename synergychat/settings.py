"""Settings of every role, read from the environment with the original's names.

One parse happens in ``__main__``; tests build the same models directly.
A field ``api_port`` is read from ``API_PORT``: the env var name is the field
name upper-cased, so error messages can name the variable exactly.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from yarl import URL

# The course's keywords; the original requires CRAWLER_KEYWORDS, we default to them.
DEFAULT_KEYWORDS = ("love", "hate", "joy", "sadness", "anger", "disgust", "fear", "surprise")
# The words the original crashes on; we mask them instead.
DEFAULT_BLOCKED_WORDS = ("heck", "darn", "fetch")
PUBLIC_GUTENDEX_URL = "https://gutendex.com"


class StartupError(Exception):
    """A role can't start (a database it can't open, ...); the message names the variable to fix."""


Port = Annotated[int, Field(ge=1, le=65535)]


def split_comma_list(value: object) -> object:
    """Accept ``a, b,,c`` (as the original does) as well as a real list."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def checked_url(value: str, *, absolute: bool) -> str:
    """A URL yarl (and so aiohttp) can use: http(s), a host and a valid port when absolute.

    Whitespace, quotes, ``;`` and ``,`` are refused: API_URL's origin goes into the
    page's Content-Security-Policy header, where they would start a new directive.
    """
    if re.search(r"[\s\"';,<>\\]", value):
        raise ValueError(f"must be a URL without spaces, quotes, ';' or ',', got {value!r}")
    try:
        url = URL(value)
        url.port  # noqa: B018 - parsing the port is the check ("host:99999")
    except ValueError as exc:
        raise ValueError(f"is not a valid URL ({exc}), got {value!r}") from None
    # Relative ("/api") and scheme-relative ("//api.example") URLs are the browser's to resolve.
    if (absolute or url.scheme) and (url.scheme not in ("http", "https") or not url.host):
        raise ValueError(f"must be an absolute http:// or https:// URL, got {value!r}")
    return value


def masked_database_url(url: str) -> str:
    """``url`` with its password (in the user part or a ``password=`` parameter) shown as ***,
    fit for logs and error messages. Plain text work, no URL parsing: a password may hold
    characters a parser would take for the path, and a bad URL must be masked too."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return "***"
    userinfo, at, address = rest.rpartition("@")
    if at and ":" in userinfo:
        rest = f"{userinfo.split(':', 1)[0]}:***@{address}"
    rest = re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", rest)
    return f"{scheme}://{rest}"


def postgresql_url(value: str) -> str:
    """``value`` stripped; a ValueError unless it is empty or a PostgreSQL URL."""
    value = value.strip()
    if value and not value.startswith(("postgresql://", "postgres://")):
        # Never the value itself: it may hold a password.
        raise ValueError("must be a postgresql:// URL (postgresql://user:password@host:5432/database)")
    return value


class _Settings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)


class ServerSettings(_Settings):
    """How every role serves HTTP."""

    # Open connections at most (streams included); lowered to fit the open-file limit.
    # Past it, idle keep-alive connections make room, then newcomers get a 503.
    max_connections: int = Field(default=10_000, ge=16)
    # One INFO line per request (health probes only at DEBUG); off saves about an eighth of a
    # GET /messages' CPU time in text, more in JSON (bench/api_load.py).
    access_log: bool = True
    # uvloop (the default) or asyncio's own loop; both run everything the same.
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"

    @field_validator("event_loop", mode="before")
    @classmethod
    def _loop_any_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value


class LogSettings(_Settings):
    """How every role logs (to stderr)."""

    # text: one line a record, as always; json: one JSON object a line, for log collectors.
    log_format: Literal["text", "json"] = "text"
    # Health probes and metrics scrapes are logged at DEBUG, every other request at INFO.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    # In any case: LOG_FORMAT=JSON and LOG_LEVEL=debug are what people type.
    @field_validator("log_format", mode="before")
    @classmethod
    def _format_any_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_any_case(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value


class WebSettings(_Settings):
    web_port: Port = 8080
    # Base URL the *browser* uses for the api: absolute or relative to the page.
    # Empty: the page loads and says the api is not configured.
    api_url: str = ""

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        value = value.strip()
        return checked_url(value, absolute=False) if value else value


class ApiSettings(_Settings):
    api_port: Port = 8080
    # SQLite file for messages; unset means in memory (lost on exit).
    api_db_filepath: str = ""
    # postgresql://user:password@host:5432/db: messages in PostgreSQL, which any number of
    # api replicas share (API_DB_FILEPATH is then not used). Unset: SQLite, as above.
    api_database_url: str = ""
    # Connections each api process may hold open to that database (LISTEN's one not included).
    api_database_pool_size: int = Field(default=10, ge=2, le=1000)
    # Where the api reaches a standalone crawler; unset means /stats is off.
    crawler_base_url: str = ""
    crawler_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    api_blocked_words: Annotated[list[str], NoDecode] = list(DEFAULT_BLOCKED_WORDS)
    # "*" allows any http:// or https:// origin, like the original.
    api_cors_origins: Annotated[list[str], NoDecode] = ["*"]

    _split = field_validator("api_blocked_words", "api_cors_origins", mode="before")(split_comma_list)

    @field_validator("crawler_base_url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        value = value.strip()
        return checked_url(value, absolute=True) if value else value

    _database_url = field_validator("api_database_url")(postgresql_url)

    @field_validator("api_cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        origins = []
        for origin in value:
            if origin == "*":
                origins.append(origin)
                continue
            url = URL(checked_url(origin.rstrip("/"), absolute=True))
            if url.path not in ("", "/") or url.query_string or url.fragment:
                raise ValueError(f"each origin must be '*' or scheme://host[:port], got {origin!r}")
            # As browsers send it: lower-case, no default port ("http://a:80" is "http://a").
            origins.append(str(url.origin()))
        return origins


# The crawler's SQLite file, inside the CRAWLER_DB_PATH folder.
CRAWLER_DB_FILENAME = "crawler.sqlite3"


class CrawlerSettings(_Settings):
    crawler_port: Port = 8080
    crawler_keywords: Annotated[list[str], NoDecode] = list(DEFAULT_KEYWORDS)
    # A folder; the SQLite file lives inside. Unset means in memory.
    crawler_db_path: str = ""
    # postgresql://user:password@host:5432/db: counts and position in PostgreSQL, which any
    # number of crawler replicas share, splitting the walk (CRAWLER_DB_PATH is then not used).
    crawler_database_url: str = ""
    # A replica's hold on a book (or the page cursor), renewed while it works: one that dies
    # loses its books this long after its last renewal, and another replica takes them over.
    crawler_lease_seconds: float = Field(default=60.0, ge=1, le=3600)
    crawler_source_url: str = PUBLIC_GUTENDEX_URL
    crawler_delay_seconds: float = Field(default=30.0, ge=0)
    # One download (a page, a book) is abandoned past this, or when it averages under
    # the minimum rate after a 30 s start (0 = no minimum); a book is tried again later.
    crawler_download_timeout_seconds: float = Field(default=600.0, gt=0)
    crawler_download_min_bytes_per_second: int = Field(default=1024, ge=0)
    # GET /stats: downloads at once (nginx limit_conn), and how long a client may take
    # nothing before it is cut off (nginx send_timeout).
    crawler_stats_max_concurrent: int = Field(default=10, ge=1)
    crawler_send_timeout_seconds: float = Field(default=60.0, gt=0)

    _split = field_validator("crawler_keywords", mode="before")(split_comma_list)
    _database_url = field_validator("crawler_database_url")(postgresql_url)

    @field_validator("crawler_keywords")
    @classmethod
    def _keywords(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("needs at least one keyword")
        # Keywords match case-insensitively, so store them folded and once each.
        return list(dict.fromkeys(keyword.lower() for keyword in value))

    @field_validator("crawler_source_url")
    @classmethod
    def _source_url(cls, value: str) -> str:
        return checked_url(value.strip().rstrip("/"), absolute=True)

    @property
    def crawler_db_file(self) -> Path | None:
        """The SQLite file of counts inside ``CRAWLER_DB_PATH``; None when kept in memory."""
        return Path(self.crawler_db_path) / CRAWLER_DB_FILENAME if self.crawler_db_path else None


class RamHoldSettings(_Settings):
    # Required, as in the course's testram image: how much memory to hold, in MiB
    # (2**20 bytes, what Kubernetes writes as "Mi").
    megabytes: int = Field(gt=0)


class LoadgenSettings(_Settings):
    # The api's base URL, or the chat page's URL (the api is then found as the page finds it).
    loadgen_target_url: str
    loadgen_users: int = Field(default=10, ge=1, le=2000)
    # 0 runs until stopped.
    loadgen_duration_seconds: float = Field(default=0.0, ge=0)
    # Where the load generator serves /metrics, /healthz and /readyz.
    loadgen_port: Port = 8080
    # People join this many per second (Locust's spawn rate), not all at once.
    loadgen_spawn_rate: float = Field(default=2.0, gt=0)
    # The mean pause between one person's messages: 10 people at 10 s are about one message a second.
    loadgen_post_interval_seconds: float = Field(default=10.0, ge=0.5)
    # The mean length of one person's visit; who leaves is replaced by someone new (who loads
    # the page again, when given the page's URL). 0: everyone stays for the whole run.
    loadgen_visit_seconds: float = Field(default=600.0, ge=0)
    loadgen_report_seconds: float = Field(default=5.0, ge=1)
    loadgen_request_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # The run fails (exit 1) when more than this share of what people did went wrong.
    loadgen_max_error_rate: float = Field(default=0.01, ge=0, le=1)

    @field_validator("loadgen_target_url")
    @classmethod
    def _target_url(cls, value: str) -> str:
        return checked_url(value.strip(), absolute=True)
