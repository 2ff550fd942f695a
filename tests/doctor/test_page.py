"""What the browser makes of the page: API_URL resolution, the config script, CSP."""

from __future__ import annotations

import pytest
from yarl import URL

from synergychat.doctor.page import (
    ConfigError,
    PageKind,
    api_url_from_config,
    api_url_from_original_script,
    csp_blocking_directive,
    is_loopback_host,
    looks_like_bare_host,
    parse_page,
    resolve_api_base,
    same_machine_names,
    scheme_mistake,
)
from synergychat.settings import WebSettings
from synergychat.web import page_config_json


@pytest.mark.parametrize(
    ("page", "api_url", "kind", "base"),
    [
        # Both trailing-slash forms mean the same base (docs/CONTRACT.md).
        ("http://h:8080/", "/api", PageKind.CONFIG, "http://h:8080/api/"),
        ("http://h:8080/", "/api/", PageKind.CONFIG, "http://h:8080/api/"),
        ("http://h:8080/", "/api//", PageKind.CONFIG, "http://h:8080/api/"),
        # A relative path without a slash is relative to the page's folder.
        ("http://h/chat/", "api", PageKind.CONFIG, "http://h/chat/api/"),
        ("http://h/chat/index.html", "api", PageKind.CONFIG, "http://h/chat/api/"),
        ("http://h/chat", "api", PageKind.CONFIG, "http://h/api/"),
        ("http://h/chat/", "../api", PageKind.CONFIG, "http://h/api/"),
        # Absolute and scheme-relative URLs replace the page's origin.
        ("http://h:8080/", "http://localhost:8081", PageKind.CONFIG, "http://localhost:8081/"),
        ("https://h/", "//api.example.com/v1/", PageKind.CONFIG, "https://api.example.com/v1/"),
        # Whitespace and backslashes, as the WHATWG parser treats them.
        ("http://h/", "  /api\n", PageKind.CONFIG, "http://h/api/"),
        ("http://h/", "\\api", PageKind.CONFIG, "http://h/api/"),
        # The original page concatenates `${apiUrl}/messages`: "/api/" gives /api//messages.
        ("http://h/", "/api/", PageKind.ORIGINAL, "http://h/api//"),
        ("http://h/", "http://localhost:8081", PageKind.ORIGINAL, "http://localhost:8081/"),
    ],
)
def test_api_base_resolves_as_the_browser_does(page: str, api_url: str, kind: PageKind, base: str) -> None:
    assert str(resolve_api_base(api_url, URL(page), kind)) == base


@pytest.mark.parametrize("api_url", ["localhost:8081", "ftp://files.example.com/", "javascript:alert(1)"])
def test_a_non_http_scheme_is_no_base(api_url: str) -> None:
    with pytest.raises(ValueError):
        resolve_api_base(api_url, URL("http://h/"), PageKind.CONFIG)


def test_scheme_and_bare_host_mistakes() -> None:
    assert scheme_mistake("localhost:8081") == "localhost"
    assert scheme_mistake("http://localhost:8081") is None
    assert scheme_mistake("/api") is None
    assert looks_like_bare_host("synchatapi.internal")
    assert looks_like_bare_host("api.example.com/v1")
    assert not looks_like_bare_host("api")
    assert not looks_like_bare_host("/api/")
    assert not looks_like_bare_host("./api.v1")


def test_loopback_names() -> None:
    assert all(
        map(is_loopback_host, ["localhost", "127.0.0.1", "127.0.0.2", "::1", "[::1]", "app.localhost"])
    )
    assert not any(map(is_loopback_host, ["example.com", "10.0.0.1", "", None]))
    assert same_machine_names("localhost", "127.0.0.1")
    assert not same_machine_names("localhost", "127.0.0.2")


def test_our_config_script_round_trips_through_the_web_roles_escaping() -> None:
    # The web role escapes <, > and & so API_URL can't close the script element. Its settings
    # refuse < and > in API_URL at start; the escaping is the second line of defence, so the
    # value is put in without that check.
    api_url = "http://h/</script><b>&"
    settings = WebSettings.model_construct(api_url=api_url)
    html = (
        '<script id="synergychat-config" type="application/json">'
        f"{page_config_json(settings)}</script><script src=app.js></script>"
    )
    parts = parse_page(html)
    assert "</script>" not in (parts.config_text or "")
    assert api_url_from_config(parts.config_text or "") == api_url
    assert parts.script_srcs == ["app.js"]


@pytest.mark.parametrize("text", ["__SYNERGYCHAT_CONFIG__", "[1]", '{"apiUrl": 3}'])
def test_a_broken_config_script_is_reported(text: str) -> None:
    with pytest.raises(ConfigError):
        api_url_from_config(text)


def test_the_original_app_js_line_is_found() -> None:
    assert api_url_from_original_script("const apiUrl = 'http://localhost:8081';\n\nfetch()") == (
        "http://localhost:8081"
    )
    assert api_url_from_original_script("const apiUrl = '';\n") == ""
    assert api_url_from_original_script("fetch('/messages')") is None


def test_a_meta_csp_is_read() -> None:
    parts = parse_page('<meta http-equiv="Content-Security-Policy" content="connect-src \'self\'">')
    assert parts.meta_policies == ["connect-src 'self'"]


PAGE = URL("http://chat.example.com:8080/")


@pytest.mark.parametrize(
    ("policy", "target", "blocked_by"),
    [
        ("default-src 'self'; connect-src 'self'", "http://chat.example.com:8080/api/messages", None),
        ("connect-src 'self'", "http://localhost:8081/messages", "connect-src 'self'"),
        # connect-src falls back to default-src.
        ("default-src 'self'", "http://localhost:8081/messages", "default-src 'self'"),
        ("script-src 'self'", "http://localhost:8081/messages", None),
        ("connect-src 'self' http://localhost:8081", "http://localhost:8081/messages", None),
        # A host source without a port allows only the scheme's default port.
        (
            "connect-src 'self' http://localhost",
            "http://localhost:8081/messages",
            "connect-src 'self' http://localhost",
        ),
        ("connect-src http://localhost:*", "http://localhost:8081/messages", None),
        ("connect-src *.example.com:*", "http://api.example.com:9/messages", None),
        ("connect-src *.example.com", "http://example.com/messages", "connect-src *.example.com"),
        ("connect-src https:", "https://api.example.com/messages", None),
        # An http source also allows its https upgrade, never the reverse.
        ("connect-src http://api.example.com", "https://api.example.com/messages", None),
        (
            "connect-src https://api.example.com",
            "http://api.example.com/messages",
            "connect-src https://api.example.com",
        ),
        ("connect-src 'none'", "http://chat.example.com:8080/api/messages", "connect-src 'none'"),
        ("connect-src *", "http://anything:1/messages", None),
        # Paths: a trailing slash is a prefix, otherwise exact.
        ("connect-src http://a.example/api/", "http://a.example/api/messages", None),
        (
            "connect-src http://a.example/api",
            "http://a.example/api/messages",
            "connect-src http://a.example/api",
        ),
        # Two policies in one header: both must allow.
        ("connect-src *, connect-src 'self'", "http://localhost:8081/messages", "connect-src 'self'"),
    ],
)
def test_csp_connect_src(policy: str, target: str, blocked_by: str | None) -> None:
    assert csp_blocking_directive([policy], PAGE, URL(target)) == blocked_by
