"""Counting keyword lines in a streamed text: the figure ``/stats`` reports.

A book's ``Count`` for a keyword is the number of its lines that contain the
keyword, case-insensitively, as a substring ("love" counts "gloves"), as
docs/CONTRACT.md says. Lines end at ``\\n``; the ``\\r`` of a ``\\r\\n`` stays on its line
and matches nothing. Case-insensitive means both sides go through ``str.lower``.

The text arrives as bytes in pieces of any size. Memory stays bounded: only the
unfinished last line is carried from one piece to the next, and a line longer
than ``max_line`` is reduced to the keywords it already contains plus a short
tail (a keyword may straddle the cut).

Speed: lower-casing a non-ASCII ``str`` costs ten times more than an ASCII one,
and Gutenberg's UTF-8 texts are full of curly quotes. So when the text is UTF-8
and every keyword is ASCII, we lower-case and search the raw bytes instead:
``bytes.lower`` folds exactly the ASCII letters, an ASCII byte in UTF-8 is always
that character (even beside invalid bytes, which decoding would replace), and
only two non-ASCII characters lower-case to ASCII letters (İ and the Kelvin sign
K); a block that holds one of them is decoded and searched as ``str`` instead.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Sequence
from typing import Any

# Non-ASCII characters whose ``str.lower()`` contains ASCII: "İ" -> "i̇", "K" -> "k".
# (tests/crawler/test_counting.py checks this against every code point.)
ASCII_LOWERING_CHARACTERS = ("\u0130", "\u212a")
# Their UTF-8 forms, each behind one of its bytes that is rare in English text (not part of
# curly quotes, dashes or accented Latin-1 letters): a single byte is found by memchr ~40
# times faster than a sequence is, and this check runs on every block.
_ASCII_LOWERING_UTF8 = ((b"\xc4", "\u0130".encode()), (b"\x84", "\u212a".encode()))

# Long enough for any real line; a longer one (a file with no newlines) is folded down.
DEFAULT_MAX_LINE = 1 << 20


class TextTooLarge(Exception):
    """The text is longer than the size cap: its counts would cost too much to get."""


def resolve_charset(name: str | None) -> str:
    """The codec to decode a declared charset with (raises LookupError if unknown).

    No charset means UTF-8. US-ASCII also means UTF-8: UTF-8 is a superset, and
    Gutenberg labels some UTF-8 files us-ascii.
    """
    if not name:
        return "utf-8"
    codec = codecs.lookup(name.strip().strip("\"'")).name
    return "utf-8" if codec in ("ascii", "utf-8") else codec


def _lines_containing(text: Any, keyword: Any, newline: Any, start: int = 0) -> int:
    """How many lines of ``text[start:]`` contain ``keyword`` (``str`` or ``bytes`` alike).

    One ``find`` per matching line: after a match, skip to the line's end.
    """
    count = 0
    find = text.find
    step = len(keyword)
    at = find(keyword, start)
    while at >= 0:
        count += 1
        end = find(newline, at + step)
        if end < 0:
            break
        at = find(keyword, end + 1)
    return count


class LineCounter:
    """Feed a text's bytes in pieces with :meth:`feed`; :meth:`finish` gives the counts."""

    def __init__(
        self,
        keywords: Iterable[str],
        charset: str | None = "utf-8",
        max_bytes: int | None = None,
        max_line: int = DEFAULT_MAX_LINE,
    ) -> None:
        self.keywords = tuple(dict.fromkeys(keyword.lower() for keyword in keywords))
        self.charset = resolve_charset(charset)
        self.max_bytes = max_bytes
        self.bytes_seen = 0
        self._counts = [0] * len(self.keywords)
        # An empty keyword or one spanning lines can never be inside one line.
        self._searched = [i for i, keyword in enumerate(self.keywords) if keyword and "\n" not in keyword]
        self._str_keywords = self.keywords
        self._longest = max((len(keyword.encode()) for keyword in self.keywords), default=1)
        self._raw_bytes = self.charset == "utf-8" and all(keyword.isascii() for keyword in self.keywords)
        if self._raw_bytes:
            self._bytes_keywords = tuple(keyword.encode() for keyword in self.keywords)
            self._decoder = None
        else:
            self._decoder = codecs.getincrementaldecoder(self.charset)(errors="replace")
        self._max_line = max(max_line, 4 * self._longest)
        # The unfinished last line, in pieces, and the keywords it has shown so far.
        self._partial: list[Any] = []
        self._partial_size = 0
        self._partial_hits: set[int] = set()
        self._finished = False

    def feed(self, data: bytes) -> None:
        if self._finished:
            raise RuntimeError("the counter has finished")
        self.bytes_seen += len(data)
        if self.max_bytes is not None and self.bytes_seen > self.max_bytes:
            raise TextTooLarge(f"the text is larger than {self.max_bytes} bytes")
        self._take(data if self._decoder is None else self._decoder.decode(data))

    def _take(self, piece: Any) -> None:
        newline: Any = b"\n" if self._decoder is None else "\n"
        cut = piece.rfind(newline)
        if cut < 0:
            self._extend_partial(piece)
            return
        # Every line of this block is complete: the carried start, then whole lines.
        block = piece[:cut]
        if self._partial:
            block = piece[:0].join((*self._partial, block))
            self._partial.clear()
        self._count_block(block)
        rest = piece[cut + 1 :]
        self._partial_size = len(rest)
        if rest:
            self._partial.append(rest)

    def finish(self) -> dict[str, int]:
        """The counts, zeros included, once the whole text has been fed."""
        if not self._finished:
            self._finished = True
            if self._decoder is not None:
                self._take(self._decoder.decode(b"", final=True))
            if self._partial or self._partial_hits:
                empty: Any = b"" if self._decoder is None else ""
                block = empty.join(self._partial)
                self._partial.clear()
                self._count_block(block)
        return dict(zip(self.keywords, self._counts, strict=True))

    def _fold(self, block: Any) -> tuple[Any, Sequence[Any], Any]:
        """Lower-case a block of whole lines; give it with the keywords and newline to search."""
        if self._decoder is not None:
            return block.lower(), self._str_keywords, "\n"
        if any(rare in block and sequence in block for rare, sequence in _ASCII_LOWERING_UTF8):
            return block.decode("utf-8", "replace").lower(), self._str_keywords, "\n"
        return block.lower(), self._bytes_keywords, b"\n"

    def _count_block(self, block: Any) -> None:
        text, keywords, newline = self._fold(block)
        hits = self._partial_hits
        after_first = 0
        if hits:
            # The first line was seen in part already: it counts once for those keywords.
            first_end = text.find(newline)
            after_first = len(text) if first_end < 0 else first_end + 1
        for i in self._searched:
            if i in hits:
                self._counts[i] += 1 + _lines_containing(text, keywords[i], newline, after_first)
            else:
                self._counts[i] += _lines_containing(text, keywords[i], newline)
        hits.clear()

    def _extend_partial(self, piece: Any) -> None:
        if not piece:
            return
        self._partial.append(piece)
        self._partial_size += len(piece)
        if self._partial_size <= self._max_line:
            return
        # A very long line: remember which keywords it holds so far, keep only a tail
        # long enough for a keyword that straddles the cut.
        line = piece[:0].join(self._partial)
        text, keywords, _ = self._fold(line)
        self._partial_hits.update(i for i in self._searched if keywords[i] in text)
        keep = len(line) - self._longest - 4
        if isinstance(line, bytes):
            # Start the tail on a character boundary (not a UTF-8 continuation byte).
            while keep > 0 and 0x80 <= line[keep] < 0xC0:
                keep -= 1
        tail = line[max(keep, 0) :]
        self._partial[:] = [tail]
        self._partial_size = len(tail)


def count_keyword_lines(
    chunks: Iterable[bytes],
    keywords: Iterable[str],
    charset: str | None = "utf-8",
    max_bytes: int | None = None,
) -> dict[str, int]:
    """Lines containing each keyword, case-insensitively, in a text given as byte chunks.

    Raises :class:`TextTooLarge` past ``max_bytes`` and LookupError for an unknown charset.
    """
    counter = LineCounter(keywords, charset, max_bytes)
    for chunk in chunks:
        counter.feed(chunk)
    return counter.finish()
