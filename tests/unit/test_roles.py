"""The role table: which parts each role runs and how the api reaches the crawler."""

from __future__ import annotations

import pytest

from synergychat.roles import (
    ROLE_PARTS,
    CrawlerTransport,
    Part,
    Role,
    RoleSettings,
    crawler_transport,
    listen_port,
    load_settings,
)
from synergychat.settings import ApiSettings, CrawlerSettings, WebSettings


@pytest.mark.parametrize(
    "role, parts",
    [
        (Role.WEB, {Part.WEB}),
        (Role.API, {Part.API}),
        (Role.CRAWLER, {Part.CRAWLER}),
        # all includes the crawler: /stats works in development without a second process
        (Role.ALL, {Part.WEB, Part.API, Part.CRAWLER}),
    ],
)
def test_role_parts(role: Role, parts: set[Part]) -> None:
    assert ROLE_PARTS[role] == parts


@pytest.mark.parametrize(
    "parts, base_url, expected",
    [
        # co-located: a direct call even if CRAWLER_BASE_URL is set
        (ROLE_PARTS[Role.ALL], "http://crawler:8080", CrawlerTransport.IN_PROCESS),
        (ROLE_PARTS[Role.ALL], "", CrawlerTransport.IN_PROCESS),
        # api alone uses HTTP to the crawler when told where it is
        (ROLE_PARTS[Role.API], "http://crawler-service", CrawlerTransport.HTTP),
        # api alone without CRAWLER_BASE_URL: "Crawler worker not configured"
        (ROLE_PARTS[Role.API], "", CrawlerTransport.NONE),
    ],
)
def test_crawler_transport(parts: frozenset[Part], base_url: str, expected: CrawlerTransport) -> None:
    assert crawler_transport(parts, ApiSettings(crawler_base_url=base_url)) is expected


@pytest.mark.parametrize(
    "role, env, port",
    [
        (Role.WEB, {"WEB_PORT": "9001"}, 9001),
        (Role.API, {"API_PORT": "9002"}, 9002),
        (Role.CRAWLER, {"CRAWLER_PORT": "9003"}, 9003),
        # all serves everything on the web port
        (Role.ALL, {"WEB_PORT": "9004", "API_PORT": "9005"}, 9004),
        (Role.API, {}, 8080),
    ],
)
def test_listen_port(role: Role, env: dict[str, str], port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert listen_port(role, load_settings(role)) == port


def test_all_defaults_api_url_to_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("API_URL", raising=False)
    assert load_settings(Role.ALL).web == WebSettings(api_url="/api")
    assert load_settings(Role.WEB).web == WebSettings(api_url="")


def test_all_keeps_an_explicit_api_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_URL", "http://chat.example/api/")
    assert load_settings(Role.ALL).web == WebSettings(api_url="http://chat.example/api/")


def test_a_role_parses_only_its_own_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # A broken crawler variable must not stop the web role.
    monkeypatch.setenv("CRAWLER_PORT", "not a port")
    assert load_settings(Role.WEB) == RoleSettings(web=WebSettings())


def test_keywords_default_and_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    assert CrawlerSettings().crawler_keywords[:2] == ["love", "hate"]
    monkeypatch.setenv("CRAWLER_KEYWORDS", " Love, JOY,,love ")
    assert CrawlerSettings().crawler_keywords == ["love", "joy"]


@pytest.mark.parametrize(
    "model, variable, value, fragment",
    [
        # a CSP directive smuggled in through API_URL's origin
        (WebSettings, "API_URL", "http://evil.example;script-src *", "without spaces, quotes"),
        (WebSettings, "API_URL", "http://[::1", "not a valid URL"),
        (WebSettings, "API_URL", "http://synchatapi.internal:99999", "Port out of range"),
        (WebSettings, "API_URL", "ftp://files.example/api", "absolute http:// or https://"),
        (ApiSettings, "CRAWLER_BASE_URL", "crawler:8080", "absolute http:// or https://"),
        (ApiSettings, "CRAWLER_BASE_URL", "http://crawler:99999", "Port out of range"),
        (ApiSettings, "API_CORS_ORIGINS", "http://chat.example/path", "scheme://host[:port]"),
        (CrawlerSettings, "CRAWLER_SOURCE_URL", "gutendex.com", "absolute http:// or https://"),
    ],
)
def test_urls_are_checked_at_start(
    monkeypatch: pytest.MonkeyPatch, model: type, variable: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=fragment.replace("[", "\\[").replace("]", "\\]")):
        model()


@pytest.mark.parametrize(
    "value, expected",
    [
        # as browsers send an Origin: no default port, lower-case host
        (
            "http://Chat.Example:80, https://chat.example:443/",
            ["http://chat.example", "https://chat.example"],
        ),
        ("http://localhost:8080", ["http://localhost:8080"]),
        ("*", ["*"]),
    ],
)
def test_cors_origins_are_normalised(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: list[str]
) -> None:
    monkeypatch.setenv("API_CORS_ORIGINS", value)
    assert ApiSettings().api_cors_origins == expected
