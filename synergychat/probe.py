"""``synergychat probe URL``: a container healthcheck for an image with no curl or wget.

Exits 0 when ``URL`` answers 2xx within the timeout and 1 otherwise (what Docker
and podman read as healthy and unhealthy), printing one line either way, which
the engine keeps in the container's health log. It runs every few seconds in
every container, so it loads only the standard library's HTTP client: none of
the app (no aiohttp, no settings), and starts in a few tens of milliseconds.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from typing import IO, Any

# Below the compose files' healthcheck timeout (5 s), so a slow answer is reported
# by the probe ("timed out") rather than cut off by the engine without a word.
DEFAULT_TIMEOUT_SECONDS = 4.0
# Enough of a readiness answer to see which check failed.
BODY_EXCERPT_BYTES = 300


class RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A probe URL that redirects is a wrong probe URL: report the 3xx, never follow it."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# No proxies: the URL is the container's own port; an HTTP_PROXY in its environment
# (for the crawler's way out) must not carry the probe elsewhere.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), RefuseRedirects)


def one_line(body: bytes) -> str:
    return " ".join(body.decode("utf-8", errors="replace").split())


def probe(url: str, timeout: float) -> tuple[bool, str]:
    """(healthy, what to print): healthy when ``url`` answers 2xx within ``timeout``."""
    try:
        with OPENER.open(url, timeout=timeout) as response:
            status, body = response.status, response.read(BODY_EXCERPT_BYTES)
    except urllib.error.HTTPError as error:  # 3xx (not followed), 4xx, 5xx
        with error:
            status, body = error.code, error.read(BODY_EXCERPT_BYTES)
    except urllib.error.URLError as error:  # refused, unknown host, ...
        return False, f"{url}: no answer ({error.reason})"
    except OSError as error:  # timed out, reset
        return False, f"{url}: no answer ({error or type(error).__name__})"
    return 200 <= status < 300, f"{url}: {status} {one_line(body)}".rstrip()


def http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"{value!r} is not an http:// or https:// URL")
    return value


def main(argv: list[str], out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="synergychat probe",
        description="Exit 0 if URL answers 2xx, 1 otherwise: a healthcheck for containers without curl.",
    )
    parser.add_argument("url", type=http_url, help="e.g. http://127.0.0.1:8080/readyz")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help=f"seconds to wait for the answer (default {DEFAULT_TIMEOUT_SECONDS:g})",
    )
    args = parser.parse_args(argv)
    healthy, line = probe(args.url, args.timeout)
    print(line, file=(out or sys.stdout) if healthy else (err or sys.stderr))
    return 0 if healthy else 1
