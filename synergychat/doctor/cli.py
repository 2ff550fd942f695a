"""``python -m synergychat doctor URL``: find what is miswired in a deployment, from outside.

URL is the page a user opens. The doctor reads it like a browser, resolves the
API_URL it finds against it, then calls the api the way the page, the browser's
CORS checks and a load balancer would. One line per hop; exit 0 when nothing
failed, 1 otherwise, 2 on a bad argument. See docs/DOCTOR.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TextIO

from yarl import URL

from .checks import diagnose
from .walk import Check, Report, Status

DEFAULT_TIMEOUT_SECONDS = 5.0
MARKS = {Status.OK: "✔", Status.WARN: "!", Status.FAIL: "✘", Status.SKIP: "-"}
# For a terminal or pipe that cannot print the marks above.
ASCII_MARKS = {Status.OK: "ok", Status.WARN: "!!", Status.FAIL: "XX", Status.SKIP: "--"}


def page_url(value: str) -> URL:
    try:
        url = URL(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a URL: {value!r}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise argparse.ArgumentTypeError(
            f"give the page's full address, starting with http:// or https:// (got {value!r})"
        )
    return url


def timeout_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not 0 < seconds <= 300:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 300 seconds, got {value}")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m synergychat doctor",
        description="Check a SynergyChat deployment the way a browser meets it, and say what is miswired.",
    )
    parser.add_argument(
        "url", type=page_url, metavar="URL", help="the page users open, e.g. http://localhost:8080/"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON, for scripts")
    parser.add_argument(
        "--timeout",
        type=timeout_seconds,
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=f"give up on each request after this long (default {DEFAULT_TIMEOUT_SECONDS:g})",
    )
    parser.add_argument(
        "--insecure", action="store_true", help="accept TLS certificates nobody vouches for (self-signed)"
    )
    parser.add_argument(
        "--no-lb-check",
        dest="lb_check",
        action="store_false",
        help="skip the load balancer check (GET / on the api), e.g. when its health check probes /healthz",
    )
    return parser


def _can_print(stream: TextIO, text: str) -> bool:
    try:
        text.encode(stream.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _grouped(checks: list[Check]) -> list[list[Check]]:
    groups: list[list[Check]] = []
    for check in checks:
        previous = groups[-1][-1] if groups else None
        if (
            previous is not None
            and check.status is Status.SKIP
            and previous.status is Status.SKIP
            and check.saw == previous.saw
            and check.url is None
            and previous.url is None
        ):
            groups[-1].append(check)
        else:
            groups.append([check])
    return groups


def render_text(report: Report, stream: TextIO) -> str:
    marks = MARKS if _can_print(stream, "".join(MARKS.values()) + "…") else ASCII_MARKS
    width = max(len(check.name) for check in report.checks) if report.checks else 0
    lines = [f"SynergyChat doctor: {report.page_url}"]
    for group in _grouped(report.checks):
        check = group[0]
        if len(group) > 1:
            # Hops skipped for one reason share a line: the reason is said once.
            lines.append(f"{marks[Status.SKIP]} {', '.join(c.name for c in group)}  {check.saw}")
            continue
        where = f"{check.url}  " if check.url else ""
        lines.append(f"{marks[check.status]} {check.name:<{width}}  {where}{check.saw}")
        if check.problem:
            lines.append(f"  {' ' * width}  {check.problem}")
    counts = report.counts()
    if report.ok:
        verdict = "All is well" if not counts["warn"] else f"No failures, {counts['warn']} warning(s)"
    else:
        verdict = f"{counts['fail']} failure(s), {counts['warn']} warning(s)"
    lines.append(f"{verdict} ({counts['ok']} ok, {counts['skip']} skipped).")
    text = "\n".join(lines) + "\n"
    if not _can_print(stream, text):
        text = text.encode("ascii", errors="replace").decode("ascii")
    return text


def main(argv: list[str]) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        # argparse has printed the usage line and the error (code 2), or the help (code 0).
        return int(exit_.code or 0)
    report = asyncio.run(
        diagnose(args.url, timeout=args.timeout, insecure=args.insecure, lb_check=args.lb_check)
    )
    if args.json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(render_text(report, sys.stdout))
    return 0 if report.ok else 1
