"""Every bad input a client can send gets a 4xx with a JSON error, never a 5xx or a crash."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import expect_json, post_message


async def post_raw(
    client: Any, body: bytes | AsyncIterator[bytes], expected_status: int, **kwargs: Any
) -> str:
    response = await client.post(
        "/messages", data=body, headers={"Content-Type": "application/json"}, **kwargs
    )
    error = (await expect_json(response, expected_status))["error"]
    assert isinstance(error, str) and error
    # The api survives: the next good request works.
    await post_message(client, "after", "still alive")
    return error


@pytest.mark.parametrize(
    "body, fragment",
    [
        (b"{not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"just a string"', "must be a JSON object"),
        (b"null", "must be a JSON object"),
        (b"{}", "AuthorUsername is required; Text is required"),
        (b'{"AuthorUsername": "ann"}', "Text is required"),
        (b'{"AuthorUsername": "", "Text": "hi"}', "AuthorUsername must not be empty"),
        # whitespace only is empty
        (b'{"AuthorUsername": "   ", "Text": "hi"}', "AuthorUsername must not be empty"),
        (b'{"AuthorUsername": "ann", "Text": " \\n "}', "Text must not be empty"),
        (b'{"AuthorUsername": 5, "Text": "hi"}', "AuthorUsername must be a string"),
        (b'{"AuthorUsername": "ann", "Text": null}', "Text must be a string"),
        (
            b'{"AuthorUsername": ["ann"], "Text": {"a": 1}}',
            "AuthorUsername must be a string; Text must be a string",
        ),
        # a name is one line of visible text: no control or invisible formatting characters
        (
            b'{"AuthorUsername": "a\\nb", "Text": "hi"}',
            "AuthorUsername must not contain control or invisible",
        ),
        (b'{"AuthorUsername": "\\u202etob-relwarc", "Text": "hi"}', "must not contain control or invisible"),
        (b'{"AuthorUsername": "\\u200b", "Text": "hi"}', "must not contain control or invisible"),
        # nobody posts as the bot, in any case or width
        (
            b'{"AuthorUsername": "crawler-bot", "Text": "Beep boop!"}',
            "AuthorUsername crawler-bot is reserved for the bot",
        ),
        (b'{"AuthorUsername": " Crawler-Bot ", "Text": "hi"}', "is reserved for the bot"),
        (b'{"AuthorUsername": "\\uff43rawler-bot", "Text": "hi"}', "is reserved for the bot"),
        # JSON Python can't hold: Python's int digit limit, and nesting past the recursion limit
        (b'{"AuthorUsername": "a", "Text": ' + b"9" * 5000 + b"}", "a number or nesting is too large"),
        (b"[" * 60000, "a number or nesting is too large"),
        (b'{"AuthorUsername": "ann", "Text": "nul\\u0000byte"}', "Text must not contain control characters"),
        # valid JSON, but not text that UTF-8 (or SQLite) can hold
        (
            b'{"AuthorUsername": "ann", "Text": "half \\ud800 pair"}',
            "Text must be valid Unicode text (no lone surrogates)",
        ),
    ],
)
async def test_bad_bodies(api_client: Any, body: bytes, fragment: str) -> None:
    assert fragment in await post_raw(api_client, body, 400)


async def test_username_over_64_characters(api_client: Any) -> None:
    error = (await post_message(api_client, "u" * 65, "hi", expected_status=400))["error"]
    assert error == "AuthorUsername must be at most 64 characters"


async def test_text_over_4000_characters(api_client: Any) -> None:
    error = (await post_message(api_client, "ann", "t" * 4001, expected_status=400))["error"]
    assert error == "Text must be at most 4000 characters"


async def test_limits_are_inclusive(api_client: Any) -> None:
    # 64 and 4000 characters (not bytes: these are multi-byte) are allowed.
    page = await post_message(api_client, "é" * 64, "ü" * 4000)
    assert page[-1]["AuthorUsername"] == "é" * 64


async def test_body_over_64_kib_with_length(api_client: Any) -> None:
    assert "larger than 65536 bytes" in await post_raw(api_client, b"x" * (64 * 1024 + 1), 413)


async def test_body_over_64_kib_chunked(api_client: Any) -> None:
    # No Content-Length: the cap must hold while reading, not trust the header.
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(80):
            yield b"x" * 1024

    assert "larger than 65536 bytes" in await post_raw(api_client, chunks(), 413)


async def test_unicode_and_html_are_stored_verbatim(api_client: Any) -> None:
    text = '<img src=x onerror="alert(1)"> 🎉 naïve'
    page = await post_message(api_client, "ann", text)
    assert page[-1]["Text"] == text


async def test_text_keeps_its_indentation(api_client: Any) -> None:
    page = await post_message(api_client, "ann", "    indented code\n  and more\n")
    assert page[-1]["Text"] == "    indented code\n  and more\n"


async def test_field_names_match_case_insensitively_like_the_original(api_client: Any) -> None:
    # The Go original decodes with encoding/json: an exact name wins, any case matches.
    response = await api_client.post(
        "/messages", json={"authorusername": "ann", "TEXT": "hi", "Text": "exact"}
    )
    page = await expect_json(response, 201)
    assert page[-1]["AuthorUsername"] == "ann" and page[-1]["Text"] == "exact"


async def test_extra_fields_are_ignored(api_client: Any) -> None:
    response = await api_client.post("/messages", json={"AuthorUsername": "ann", "Text": "hi", "id": 999})
    page = await expect_json(response, 201)
    assert page[-1]["id"] != 999
