"""The chat's slash commands: parsing ``/stats`` into a query for the crawler."""

from __future__ import annotations

import re
from dataclasses import dataclass

STATS_COMMAND = "/stats"
STATS_HELP = (
    "Try /stats, /stats keywords=love,hate, /stats title=Frankenstein "
    'or /stats keywords=love title="Jekyll and Hyde".'
)
_KEYS = ("keywords", "title")
# Past these a query is a mistake, not a question (the crawler refuses them too).
MAX_QUERY_KEYWORDS = 100
MAX_KEYWORD_CHARS = 200
MAX_TITLE_CHARS = 1000
# A `key=` at the start of a word starts a part; its value runs to the next one.
_PART = re.compile(r"(?:^|(?<=\s))([A-Za-z_]+)=")
# Quotes people type around a value: straight, and the curly ones phone keyboards insert.
_QUOTE_PAIRS = {
    '"': '"',
    "'": "'",
    "\u201c": "\u201d",
    "\u2018": "\u2019",
    "\u201e": "\u201c",
    "\u00ab": "\u00bb",
}


@dataclass(frozen=True)
class StatsQuery:
    keywords: tuple[str, ...] = ()
    title: str = ""


@dataclass(frozen=True)
class CommandError:
    """A command the user typed wrong; ``reason`` is shown to them."""

    reason: str


def is_stats_command(text: str) -> bool:
    """``/stats`` alone or followed by whitespace (``/statsfoo`` is just a message)."""
    return re.match(rf"{STATS_COMMAND}(?:\s|$)", text.lstrip()) is not None


def unquote(value: str) -> str | CommandError:
    value = value.strip()
    closing = _QUOTE_PAIRS.get(value[:1])
    if closing is None:
        return value
    if len(value) >= 2 and value.endswith(closing):
        return value[1:-1].strip()
    if value[0] == "'":
        return value  # an apostrophe that starts a word ('Tis Pity), not a quote
    return CommandError(f"I couldn't read that: a quote is not closed. {STATS_HELP}")


def parse_stats_command(text: str) -> StatsQuery | CommandError:
    """Parse ``/stats [keywords=a,b] [title=...]``.

    A value runs until the next ``key=``, so titles need no quotes
    (``title=Alice's Adventures in Wonderland``) but may have them
    (``title="Jekyll and Hyde"``, or curly ones); ``keywords=love, hate`` works.
    """
    arguments = text.lstrip()[len(STATS_COMMAND) :]
    parts = list(_PART.finditer(arguments))
    leading = arguments[: parts[0].start() if parts else len(arguments)].strip()
    if leading:
        return CommandError(f"I don't understand {leading.split()[0]!r}. {STATS_HELP}")
    values: dict[str, str] = {}
    # The value of a part runs to the next part (or the end); no parts, no loop.
    for part, following in zip(parts, [*parts[1:], None]):
        key = part.group(1).lower()
        if key not in _KEYS:
            return CommandError(
                f"I don't understand {part.group(0)!r}: I know keywords= and title=. {STATS_HELP}"
            )
        if key in values:
            return CommandError(f"Give {key}= once. {STATS_HELP}")
        value = unquote(arguments[part.end() : following.start() if following else len(arguments)])
        if isinstance(value, CommandError):
            return value
        values[key] = value
    keywords = tuple(
        dict.fromkeys(word.strip().lower() for word in values.get("keywords", "").split(",") if word.strip())
    )
    title = values.get("title", "")
    if len(keywords) > MAX_QUERY_KEYWORDS:
        return CommandError(f"That's more than {MAX_QUERY_KEYWORDS} keywords; ask for fewer.")
    if any(len(keyword) > MAX_KEYWORD_CHARS for keyword in keywords):
        return CommandError(f"A keyword can be at most {MAX_KEYWORD_CHARS} characters.")
    if len(title) > MAX_TITLE_CHARS:
        return CommandError(f"A title can be at most {MAX_TITLE_CHARS} characters.")
    return StatsQuery(keywords=keywords, title=title)
