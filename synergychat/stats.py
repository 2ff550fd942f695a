"""What the chat and the crawler share about ``/stats``: the shapes of its answers.

Neither side imports the other; both import this.
"""

from __future__ import annotations

from collections.abc import Sequence

from typing_extensions import TypedDict


class KeywordCount(TypedDict):
    Keyword: str
    BookTitle: str
    Count: int


class KeywordTotals(TypedDict):
    """The sum of ``/stats`` per keyword, and the number of books with a match."""

    totals: dict[str, int]
    books: int


def totals_from_counts(counts: Sequence[KeywordCount]) -> KeywordTotals:
    per_keyword: dict[str, int] = {}
    for row in counts:
        per_keyword[row["Keyword"]] = per_keyword.get(row["Keyword"], 0) + row["Count"]
    return {"totals": per_keyword, "books": len({row["BookTitle"] for row in counts if row["Count"]})}
