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
    ],
)
def test_parse_forms(text: str, expected: StatsQuery) -> None:
    assert parse_stats_command(text) == expected


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('/stats title="Jekyll', "quote is not closed"),
        ("/stats author=Shelley", "I don't understand 'author=Shelley'"),
        ("/stats love", "I don't understand 'love'"),
    ],
)
def test_parse_errors_explain(text: str, fragment: str) -> None:
    result = parse_stats_command(text)
    assert isinstance(result, CommandError)
    assert fragment in result.reason and "/stats keywords=" in result.reason


@pytest.mark.parametrize(
    "text, expected",
    [("/stats", True), ("/stats keywords=x", True), (" /stats", True), ("/statsy", False), ("hi /stats", False)],
)
def test_is_stats_command(text: str, expected: bool) -> None:
    assert is_stats_command(text) is expected
