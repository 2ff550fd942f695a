"""What a browser makes of a SynergyChat page: the api URL it finds, where that
URL leads once resolved against the page, and whether the page's
Content-Security-Policy lets the browser call it. Pure functions, no I/O.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from html.parser import HTMLParser

from yarl import URL

CONFIG_SCRIPT_ID = "synergychat-config"
# The original Go web prepends this line to app.js before serving it.
ORIGINAL_API_URL_LINE = re.compile(r"""^\s*const\s+apiUrl\s*=\s*(['"`])(.*?)\1\s*;?\s*$""", re.MULTILINE)
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
# What WHATWG's URL parser strips from both ends of its input (C0 controls and space).
_URL_EDGE_JUNK = "".join(chr(code) for code in range(0x21))
_SCHEME_PREFIX = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
# "synchatapi.internal" or "api.example.com/v1": a host name someone forgot to prefix with http://.
_BARE_HOST = re.compile(r"^(?:[A-Za-z0-9\-]+\.)+[A-Za-z][A-Za-z0-9\-]*(?::\d+)?(?:/.*)?$")


class PageKind(StrEnum):
    # Ours: the web role hands the browser {"apiUrl": ...} in a JSON script element.
    CONFIG = "config"
    # The original Go web: app.js starts with `const apiUrl = '...';` and calls `${apiUrl}/messages`.
    ORIGINAL = "original"


@dataclass
class PageParts:
    """The parts of the page's HTML that matter for reaching the api."""

    config_text: str | None = None
    script_srcs: list[str] = field(default_factory=list)
    meta_policies: list[str] = field(default_factory=list)


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts = PageParts()
        self._in_config = False
        self._config_chunks: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name.lower(): value or "" for name, value in attrs}
        if tag == "script":
            if values.get("id") == CONFIG_SCRIPT_ID and self.parts.config_text is None:
                self._in_config = True
                self._config_chunks = []
            elif values.get("src"):
                self.parts.script_srcs.append(values["src"])
        elif tag == "meta" and values.get("http-equiv", "").lower() == "content-security-policy":
            self.parts.meta_policies.append(values.get("content", ""))

    def handle_data(self, data: str) -> None:
        if self._in_config:
            self._config_chunks.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._in_config:
            self._in_config = False
            self.parts.config_text = "".join(self._config_chunks)


def parse_page(html: str) -> PageParts:
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    return parser.parts


class ConfigError(ValueError):
    """The page's configuration script is there but unusable."""


def api_url_from_config(config_text: str) -> str:
    """The ``apiUrl`` of our page's JSON configuration, trimmed as the page's script trims it."""
    try:
        config = json.loads(config_text)
    except ValueError as exc:
        raise ConfigError(f"its {CONFIG_SCRIPT_ID} script is not JSON ({exc})") from None
    if not isinstance(config, dict):
        raise ConfigError(f"its {CONFIG_SCRIPT_ID} script is not a JSON object")
    api_url = config.get("apiUrl", "")
    if not isinstance(api_url, str):
        raise ConfigError(f"apiUrl in its {CONFIG_SCRIPT_ID} script is not a string")
    return api_url.strip()


def api_url_from_original_script(script: str) -> str | None:
    match = ORIGINAL_API_URL_LINE.search(script)
    return match.group(2) if match else None


def _whatwg_clean(reference: str) -> str:
    # The URL parser trims C0 controls and spaces, drops tabs and newlines, and
    # reads backslashes as slashes in http(s) URLs.
    reference = reference.strip(_URL_EDGE_JUNK)
    reference = re.sub(r"[\t\n\r]", "", reference)
    return reference.replace("\\", "/")


def api_base_reference(api_url: str, kind: PageKind) -> str:
    """The reference the page's script resolves against its own URL to get the api's base."""
    if kind is PageKind.CONFIG:
        # app.js: new URL(apiUrl.replace(/\/+$/, '') + '/', location.href)
        return re.sub(r"/+$", "", api_url) + "/"
    # The original concatenates: fetch(`${apiUrl}/messages`); the same as resolving
    # "messages" against apiUrl + "/", doubled slash included.
    return api_url + "/"


def resolve_api_base(api_url: str, page_url: URL, kind: PageKind) -> URL:
    """Resolve API_URL against the page URL as the page's script does in the browser.

    Raises ValueError when the result is no http(s) URL the browser could call.
    """
    reference = _whatwg_clean(api_base_reference(api_url, kind))
    scheme = _SCHEME_PREFIX.match(reference)
    if scheme and scheme.group(1).lower() not in ("http", "https"):
        raise ValueError(f"scheme {scheme.group(1)!r}")
    base = page_url.join(URL(reference))
    if base.scheme not in ("http", "https") or not base.host:
        raise ValueError("not an http(s) URL")
    return base.with_query(None).with_fragment(None)


def scheme_mistake(api_url: str) -> str | None:
    """The would-be scheme when API_URL lacks http:// (``localhost:8081`` reads as scheme "localhost")."""
    match = _SCHEME_PREFIX.match(_whatwg_clean(api_url))
    if match and match.group(1).lower() not in ("http", "https"):
        return match.group(1)
    return None


def looks_like_bare_host(api_url: str) -> bool:
    """``synchatapi.internal``: a host name the browser would take for a path next to the page."""
    return bool(_BARE_HOST.match(api_url)) and not api_url.startswith((".", "/"))


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    name = host.strip("[]").lower().rstrip(".")
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_unspecified_host(host: str | None) -> bool:
    """0.0.0.0 or ``::``: an address to listen on, never one to call."""
    try:
        return bool(host) and ipaddress.ip_address((host or "").strip("[]")).is_unspecified
    except ValueError:
        return False


def same_machine_names(a: str | None, b: str | None) -> bool:
    """Whether two host names name the same machine for a browser (localhost == 127.0.0.1 == ::1)."""
    if not a or not b:
        return False
    a, b = a.lower().strip("[]"), b.lower().strip("[]")
    if a == b:
        return True
    canonical = {"localhost", "127.0.0.1", "::1"}
    return a in canonical and b in canonical


def origin_of(url: URL) -> str:
    try:
        return str(url.origin())
    except ValueError:
        return "null"  # an opaque origin (data:, a relative URL), as browsers write it


# ---- Content-Security-Policy: does connect-src allow the api? -----------------------

_HOST_SOURCE = re.compile(
    r"^(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://)?"
    r"(?P<host>\*|(?:\*\.)?[^:/\s]+|\[[0-9A-Fa-f:.]+\])"
    r"(?::(?P<port>\d+|\*))?"
    r"(?P<path>/[^?#\s]*)?$"
)
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _scheme_part_matches(source_scheme: str, url_scheme: str) -> bool:
    # CSP3: a source scheme also allows its secure upgrade.
    source_scheme = source_scheme.lower()
    return source_scheme == url_scheme or (source_scheme, url_scheme) in {
        ("http", "https"),
        ("ws", "wss"),
        ("http", "ws"),
        ("http", "wss"),
        ("https", "wss"),
    }


def _port_matches(source_port: str | None, source_scheme: str | None, url: URL) -> bool:
    if source_port == "*":
        return True
    url_port = url.port
    if source_port is None:
        return url_port == _DEFAULT_PORTS.get(url.scheme)
    port = int(source_port)
    # An http source on 80 also allows https on 443.
    return url_port == port or (port == 80 and url.scheme == "https" and url_port == 443)


def _path_matches(source_path: str | None, url: URL) -> bool:
    if not source_path or source_path == "/":
        return True
    target = url.path
    if source_path.endswith("/"):
        return target.startswith(source_path)
    return target == source_path


def _source_matches(expression: str, page: URL, url: URL) -> bool:
    lowered = expression.lower()
    if lowered == "*":
        return url.scheme in ("http", "https", "ws", "wss") or url.scheme == page.scheme
    if lowered == "'self'":
        if url.host != page.host:
            return False
        if url.scheme == page.scheme and url.port == page.port:
            return True
        # An http page's 'self' also allows the same host over https on the default ports.
        return page.scheme == "http" and url.scheme == "https" and page.port == 80 and url.port == 443
    if lowered.startswith("'"):
        return False  # nonces, hashes, 'unsafe-*': not about where to connect
    if re.fullmatch(r"[a-z][a-z0-9+.\-]*:", lowered):
        return _scheme_part_matches(lowered[:-1], url.scheme)
    match = _HOST_SOURCE.match(expression)
    if not match:
        return False
    scheme = match.group("scheme")
    if scheme is not None:
        if not _scheme_part_matches(scheme, url.scheme):
            return False
    elif not _scheme_part_matches(page.scheme, url.scheme):
        return False
    host = match.group("host").lower().strip("[]")
    url_host = (url.host or "").lower().strip("[]")
    if host.startswith("*."):
        if not url_host.endswith(host[1:]):
            return False
    elif host != "*" and host != url_host:
        return False
    return _port_matches(match.group("port"), scheme, url) and _path_matches(match.group("path"), url)


def _directives(policy: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in policy.split(";"):
        tokens = part.split()
        if tokens:
            # The first occurrence of a directive wins; later ones are ignored.
            directives.setdefault(tokens[0].lower(), tokens[1:])
    return directives


def csp_blocking_directive(policies: list[str], page: URL, target: URL) -> str | None:
    """The directive that stops the page from fetching ``target``, or None when every policy allows it.

    Each header value may hold several policies separated by commas; all must allow.
    """
    for header in policies:
        for policy in header.split(","):
            directives = _directives(policy)
            name = "connect-src" if "connect-src" in directives else "default-src"
            sources = directives.get(name)
            if sources is None:
                continue
            if not any(_source_matches(source, page, target) for source in sources):
                return f"{name} {' '.join(sources)}".strip()
    return None
