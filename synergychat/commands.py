"""The chat's slash commands: parsing ``/stats`` into a query for the crawler."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

STATS_COMMAND = "/stats"
STATS_HELP = (
    "Try /stats, /stats keywords=love,hate, /stats title=Frankenstein "
    'or /stats keywords=love title="Jekyll and Hyde".'
)
_KEYS = ("keywords", "title")


@dataclass(frozen=True)
class StatsQuery:
    keywords: tuple[str, ...] = ()
    title: str = ""


@dataclass(frozen=True)
class CommandError:
    """A command the user typed wrong; ``reason`` is shown to them."""

    reason: str = field(default="")


def is_stats_command(text: str) -> bool:
    """``/stats`` alone or followed by whitespace (``/statsfoo`` is just a message)."""
    return re.match(rf"{STATS_COMMAND}(?:\s|$)", text.lstrip()) is not None


def parse_stats_command(text: str) -> StatsQuery | CommandError:
    """Parse ``/stats [keywords=a,b] [title=...]``.

    Titles may be quoted (``title="Jekyll and Hyde"``); bare words after a
    ``title=`` continue the title, so ``title=Pride and Prejudice`` works too.
    """
    arguments = text.lstrip()[len(STATS_COMMAND) :]
    try:
        tokens = shlex.split(arguments)
    except ValueError:
        return CommandError(f"I couldn't read that: a quote is not closed. {STATS_HELP}")
    values: dict[str, str] = {}
    last_key: str | None = None
    for token in tokens:
        key, sep, value = token.partition("=")
        key = key.strip().lower()
        if sep and key in _KEYS:
            values[key] = value.strip()
            last_key = key
        elif not sep and last_key == "title":
            values["title"] = f"{values['title']} {token}".strip()
        else:
            return CommandError(f"I don't understand {token!r}. {STATS_HELP}")
    keywords = tuple(
        dict.fromkeys(word.strip().lower() for word in values.get("keywords", "").split(",") if word.strip())
    )
    return StatsQuery(keywords=keywords, title=values.get("title", ""))
