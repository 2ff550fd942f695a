"""Reading and checking what clients send the api; every problem is a 4xx with a JSON error."""

from __future__ import annotations

import asyncio
import functools
import json
import unicodedata
from importlib import resources
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, StrictStr, StringConstraints, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from .capped_body import read_capped
from .http_errors import ClientError

# The page sizes are the message store's: it keeps the newest MAX_PAGE_SIZE in memory.
from .storage.messages import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

MAX_BODY_BYTES = 64 * 1024
# 64 KiB takes well under a second on any real link; a body still arriving after this
# is a stalled or hostile client holding a connection.
BODY_TIMEOUT_SECONDS = 10.0
MAX_USERNAME_CHARS = 64
MAX_TEXT_CHARS = 4000
MAX_ID = 2**63 - 1  # SQLite's INTEGER
# Nobody may post as the bot: its replies are styled apart and users trust them.
RESERVED_USERNAMES = frozenset({"crawler-bot"})
# Characters a reader takes for the same separator: "crawler_bot", "crawler bot",
# "crawler.bot" and "crawlerbot" all pass for the bot in a chat window.
NAME_SEPARATORS = frozenset("-_. \u00b7\u2027\u30fb")  # and the middle dots
SEPARATOR_CATEGORIES = frozenset({"Zs", "Pd", "Pc"})


def confusable_prototype(char: str) -> str:
    """What ``char`` looks like in Unicode's confusables table (TR39): Cyrillic "о" → "o",
    "‐" → "-", "I" → "l"; a character with no look-alike, or itself a prototype, maps to itself."""
    return confusable_prototypes().get(char, char)


@functools.cache
def confusable_prototypes() -> dict[str, str]:
    """Each character of the confusables table that has a prototype other than itself, and
    that prototype; made on first use (the web and crawler roles never need it, the api
    only once someone posts).

    confusable_homoglyphs ships the table as look-alike lists: a source lists only its
    prototype, a prototype lists its sources. When two characters list just each other the
    table does not say which one is the prototype, and either can stand for both.

    Read from the package's own file rather than through its module, which keeps every
    entry with the character's Unicode name for good: 7 MB for the life of the api, where
    the prototypes alone take about 1 MB (tests/unit/test_confusables.py checks that they
    agree with ``confusables.is_confusable``).
    """
    table = resources.files("confusable_homoglyphs").joinpath("confusables.json").read_bytes()
    # Each look-alike is {"c": glyph, "n": its name}; only the glyph is kept. Right-to-left
    # look-alikes come wrapped in LEFT-TO-RIGHT MARKs for display.
    look_alikes: dict[str, list[str]] = json.loads(
        table, object_hook=lambda entry: entry["c"].strip("\u200e") if entry.keys() == {"c", "n"} else entry
    )
    prototypes = {}
    for char, glyphs in look_alikes.items():
        # A few entries are sequences (a letter and its mark); a name is mapped a character at a time.
        if len(char) != 1 or len(glyphs) != 1:
            continue
        (other,) = glyphs
        if len(other) == 1 and len(look_alikes.get(other, ())) == 1:
            other = min(char, other)
        if other != char:
            prototypes[char] = other
    return prototypes


# A chat has few authors, each posting again and again: their skeletons are kept.
@functools.lru_cache(maxsize=4096)
def name_skeletons(name: str) -> frozenset[str]:
    """A name as it reads: two names are look-alikes when they share a skeleton.

    A skeleton is TR39's (NFD, each character mapped to its confusables prototype, NFD),
    taken after NFKC, casefolded, with separators dropped. TR39 maps by case ("I" → "l",
    while "i" stays), so both the name as typed and its casefolded form are mapped:
    "crawIer-bot" imitates "crawler-bot", and "ALICE" is still "alice".
    """
    text = unicodedata.normalize("NFKC", name)
    return frozenset(_skeleton(variant) for variant in (text, text.casefold()))


def _skeleton(text: str) -> str:
    text = "".join(map(confusable_prototype, unicodedata.normalize("NFD", text)))
    # Casefolding can make new look-alikes ("ẞ" → "ss"), so map once more after it.
    text = "".join(map(confusable_prototype, unicodedata.normalize("NFD", text).casefold()))
    return "".join(
        char
        for char in unicodedata.normalize("NFD", text)
        if char not in NAME_SEPARATORS and unicodedata.category(char) not in SEPARATOR_CATEGORIES
    )


@functools.cache
def reserved_skeletons() -> frozenset[str]:
    """The skeletons of the names kept for the bot (made on first use, as the table is loaded)."""
    return frozenset().union(*map(name_skeletons, RESERVED_USERNAMES))


class NewMessage(BaseModel):
    # Unknown fields (an id a client echoes back) are ignored, as the original does.
    model_config = ConfigDict(extra="ignore")

    AuthorUsername: Annotated[
        StrictStr,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_USERNAME_CHARS),
    ]
    # Not stripped: leading indentation (code, verse) is part of a message.
    Text: Annotated[
        StrictStr,
        StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS, pattern=r"^[^\x00]*$"),
    ]

    @field_validator("AuthorUsername")
    @classmethod
    def _plain_visible_name(cls, value: str) -> str:
        # A name is one line of visible text: no control characters, and no invisible
        # formatting ones (zero-width spaces, right-to-left overrides) to disguise it.
        if any(unicodedata.category(char) in ("Cc", "Cf") for char in value):
            raise PydanticCustomError(
                "invisible", "must not contain control or invisible formatting characters"
            )
        if name_skeletons(value) & reserved_skeletons():
            raise PydanticCustomError("reserved", f"{value} is reserved for the bot")
        return value

    @field_validator("Text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise PydanticCustomError("blank", "must not be blank")
        return value


async def read_capped_body(
    request: web.Request, limit: int = MAX_BODY_BYTES, timeout: float = BODY_TIMEOUT_SECONDS
) -> bytes:
    """The body, refusing anything over ``limit`` (413) whether or not Content-Length says
    so, and a body that trickles in slower than ``timeout`` allows (408)."""
    if request.content_length is not None and request.content_length > limit:
        raise ClientError(413, f"request body is larger than {limit} bytes")
    content = request.content
    if content.is_eof() and content.total_bytes <= limit:
        # All of it came with the headers (nearly every chat message): no waiting to cap.
        return content.read_nowait()
    try:
        async with asyncio.timeout(timeout):
            body = await read_capped(request.content, limit)
    except TimeoutError:
        raise ClientError(408, f"the request body did not arrive within {timeout:g} s") from None
    if not body.complete:
        raise ClientError(413, f"request body is larger than {limit} bytes")
    return body.data


def parse_new_message(body: bytes) -> NewMessage:
    try:
        decoded = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ClientError(400, "request body is not valid UTF-8") from None
    try:
        data = json.loads(decoded)
    except json.JSONDecodeError as exc:
        raise ClientError(400, f"request body is not valid JSON: {exc.msg} at position {exc.pos}") from None
    except (ValueError, RecursionError):
        # Valid JSON that Python refuses to hold: a number of thousands of digits, deep nesting.
        raise ClientError(
            400, "request body is not JSON we accept: a number or nesting is too large"
        ) from None
    if not isinstance(data, dict):
        raise ClientError(
            400, 'request body must be a JSON object like {"AuthorUsername": "...", "Text": "..."}'
        )
    try:
        return NewMessage.model_validate(with_canonical_names(data))
    except ValidationError as exc:
        raise ClientError(400, describe_validation_error(exc)) from None


def with_canonical_names(data: dict[str, Any]) -> dict[str, Any]:
    """Accept ``authorUsername`` for ``AuthorUsername`` as the original (Go's JSON decoder) does:
    an exact name wins, otherwise a case-insensitive match."""
    fields = dict(data)
    for name in NewMessage.model_fields:
        if name not in fields:
            match = next((key for key in data if key.lower() == name.lower()), None)
            if match is not None:
                fields[name] = data[match]
    return fields


def describe_validation_error(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "body"
        kind = error["type"]
        if kind == "missing":
            problems.append(f"{field} is required")
        elif kind == "string_type":
            problems.append(f"{field} must be a string")
        elif kind in ("string_too_short", "blank"):
            problems.append(f"{field} must not be empty")
        elif kind == "string_too_long":
            problems.append(f"{field} must be at most {error['ctx']['max_length']} characters")
        elif kind == "string_pattern_mismatch":
            problems.append(f"{field} must not contain control characters")
        elif kind in ("invisible", "reserved"):
            problems.append(f"{field} {error['msg']}")
        elif kind == "string_unicode":
            # JSON may carry lone surrogates ("\ud800"): not text UTF-8 or SQLite can hold.
            problems.append(f"{field} must be valid Unicode text (no lone surrogates)")
        else:
            problems.append(f"{field}: {error['msg']}")
    return "; ".join(problems)


def parse_whole_number(raw: str) -> int | None:
    """ASCII digits only: int() would also take "1_000", " 5", "+5" and "٥"."""
    if raw.isascii() and raw.isdigit():
        return int(raw)
    return None


def parse_int_param(request: web.Request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    value = parse_whole_number(raw)
    if value is None:
        raise ClientError(400, f"{name} must be a whole number, got {raw!r}")
    if not low <= value <= high:
        raise ClientError(400, f"{name} must be between {low} and {high}, got {value}")
    return value


def parse_page_size(request: web.Request) -> int:
    """``limit`` of ``GET /messages``: DEFAULT_PAGE_SIZE if absent, 1 to MAX_PAGE_SIZE."""
    limit = parse_int_param(request, "limit", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    assert limit is not None  # absent, it is the default
    return limit
