"""The command line: arguments, exit statuses, and the two output formats."""

from __future__ import annotations

import io

import pytest

from synergychat.doctor.cli import render_text
from synergychat.doctor.walk import HOPS, Check, Report, Status
from tests.doctor.conftest import DoctorRunner
from tests.support.processes import free_port

USAGE = "usage: python -m synergychat doctor [-h] [--json] [--timeout SECONDS]"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((), "the following arguments are required: URL"),
        (
            ("localhost:8080",),
            "argument URL: give the page's full address, starting with http:// or https://",
        ),
        (("ftp://example.com/",), "argument URL: give the page's full address"),
        (
            ("http://h/", "--timeout", "0"),
            "argument --timeout: must be more than 0 and at most 300 seconds, got 0",
        ),
        (("http://h/", "--timeout", "soon"), "argument --timeout: not a number of seconds: 'soon'"),
        (("http://h/", "--colour"), "unrecognized arguments: --colour"),
    ],
)
async def test_a_bad_argument_exits_2_with_the_usage(
    doctor: DoctorRunner, args: tuple[str, ...], error: str
) -> None:
    run = await doctor(*args)
    assert run.code == 2
    assert run.out == ""
    assert run.err.startswith(USAGE)
    assert f"python -m synergychat doctor: error: {error}" in run.err


async def test_help_exits_0(doctor: DoctorRunner) -> None:
    run = await doctor("--help")
    assert run.code == 0
    assert run.out.startswith(USAGE)
    assert "--insecure" in run.out and "--no-lb-check" in run.out


async def test_nothing_listening_is_a_sentence_in_both_formats(doctor: DoctorRunner) -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    as_json = await doctor(url, "--json")
    assert as_json.code == 1
    report = as_json.report
    assert report["ok"] is False
    assert report["api_url"] is None
    assert [check["name"] for check in report["checks"]] == list(HOPS)
    assert report["counts"] == {"ok": 0, "warn": 0, "fail": 1, "skip": 9}
    page = as_json.check("page")
    assert page["variable"] == "WEB_PORT"
    assert page["saw"] == f"connection refused: nothing listens on 127.0.0.1:{url.split(':')[2].rstrip('/')}"

    as_text = await doctor(url)
    assert as_text.code == 1
    assert as_text.out.splitlines() == [
        f"SynergyChat doctor: {url}",
        f"✘ page      {url}  {page['saw']}",
        f"            {page['problem']}",
        (
            "- api-url, csp, healthz, readyz, crawler, messages, stream, cors, lb-root  not checked: the page "
            "could not be read"
        ),
        "1 failure(s), 0 warning(s) (0 ok, 9 skipped).",
    ]


def test_a_terminal_that_cannot_print_the_marks_gets_ascii() -> None:
    report = Report(
        page_url="http://h/",
        checks=[
            Check("page", Status.OK, "http://h/", "HTTP 200 …"),
            Check("api-url", Status.FAIL, None, 'API_URL is ""', "API_URL is empty: …", "API_URL"),
        ],
    )
    stream = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    text = render_text(report, stream)
    text.encode("ascii")
    assert text.splitlines()[1:3] == ["ok page     http://h/  HTTP 200 ?", 'XX api-url  API_URL is ""']
