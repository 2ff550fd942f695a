"""Parsing the /stats forms of the contract, plus quoted and bare multi-word titles."""

from __future__ import annotations

import pytest

from synergychat.commands import CommandError, StatsQuery, is_stats_command, parse_stats_command


@pytest.mark.parametrize(
    "text, expected",
    [
        ("/stats", StatsQuery()),
        ("/stats keywords=love", StatsQuery(("love",))),
        ("/stats keywords=love,hate", StatsQuery(("love", "hate"))),
        ("/stats title=Frankenstein", StatsQuery((), "Frankenstein")),
        ("/stats keywords=love,hate title=Frankenstein", StatsQuery(("love", "hate"), "Frankenstein")),
        # order of parts does not matter; keys and keywords are case-insensitive
        ("/stats TITLE=Dracula Keywords=Fear", StatsQuery(("fear",), "Dracula")),
        ('/stats title="Jekyll and Hyde"', StatsQuery((), "Jekyll and Hyde")),
        ("/stats title='Jekyll and Hyde' keywords=fear", StatsQuery(("fear",), "Jekyll and Hyde")),
        # an unquoted multi-word title continues until the next key
        ("/stats title=Pride and Prejudice keywords=love", StatsQuery(("love",), "Pride and Prejudice")),
        # stray commas and repeats are tidied
        ("/stats keywords=love,,hate,love,", StatsQuery(("love", "hate"))),
        ("  /stats   keywords=joy  ", StatsQuery(("joy",))),
        # apostrophes are part of titles, not quotes
        ("/stats title=Alice's Adventures in Wonderland", StatsQuery((), "Alice's Adventures in Wonderland")),
        ("/stats title='Tis Pity keywords=love", StatsQuery(("love",), "'Tis Pity")),
        # phone keyboards insert curly quotes
        ("/stats title=\u201cFrankenstein\u201d", StatsQuery((), "Frankenstein")),
        ("/stats title=\u2018Emma\u2019 keywords=joy", StatsQuery(("joy",), "Emma")),
        # a space after the comma is still one list
        ("/stats keywords=love, hate", StatsQuery(("love", "hate"))),
        # "=" inside a value is not a new part
        ("/stats title=E=mc2", StatsQuery((), "E=mc2")),
    ],
)
def test_parse_forms(text: str, expected: StatsQuery) -> None:
    assert parse_stats_command(text) == expected


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('/stats title="Jekyll', "quote is not closed"),
        ("/stats author=Shelley", "I don't understand 'author=': I know keywords= and title="),
        ("/stats love", "I don't understand 'love'"),
        # the last of two titles silently winning would answer a question nobody asked
        ("/stats title=a title=b", "Give title= once"),
    ],
)
def test_parse_errors_explain(text: str, fragment: str) -> None:
    result = parse_stats_command(text)
    assert isinstance(result, CommandError)
    assert fragment in result.reason and "/stats keywords=" in result.reason


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("/stats keywords=" + ",".join(f"k{n}" for n in range(101)), "more than 100 keywords"),
        ("/stats keywords=" + "x" * 201, "at most 200 characters"),
        ("/stats title=" + "t" * 1001, "at most 1000 characters"),
    ],
)
def test_limits_match_the_crawlers(text: str, fragment: str) -> None:
    # The same limits in-process and over HTTP: the crawler refuses these with 400.
    result = parse_stats_command(text)
    assert isinstance(result, CommandError) and fragment in result.reason


@pytest.mark.parametrize(
    "text, expected",
    [
        ("/stats", True),
        ("/stats keywords=x", True),
        (" /stats", True),
        ("/statsy", False),
        ("hi /stats", False),
    ],
)
def test_is_stats_command(text: str, expected: bool) -> None:
    assert is_stats_command(text) is expected
