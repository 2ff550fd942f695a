"""count_keyword_lines: the Count of docs/CONTRACT.md, on any text, in any pieces."""

from __future__ import annotations

import random
import sys
import tracemalloc

import pytest

from synergychat.counting import (
    ASCII_LOWERING_CHARACTERS,
    LineCounter,
    TextTooLarge,
    count_keyword_lines,
    resolve_charset,
)

KEYWORDS = ("love", "hate", "joy", "fear")


def reference_counts(text: str, keywords: tuple[str, ...]) -> dict[str, int]:
    """The definition, written the slow obvious way."""
    lines = text.split("\n")
    return {
        kw: sum(1 for line in lines if kw and "\n" not in kw and kw.lower() in line.lower())
        for kw in keywords
    }


def pieces(data: bytes, sizes: list[int]) -> list[bytes]:
    out, at = [], 0
    for size in sizes:
        out.append(data[at : at + size])
        at += size
    out.append(data[at:])
    return out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # CRLF: the \r stays on the line and must not hide or add a match.
        ("love\r\nhate\r\nlove hate\r\n", {"love": 2, "hate": 2}),
        # Case-insensitive both ways.
        ("LOVE\nLoVe\nlove\n", {"love": 3, "hate": 0}),
        # Substring: gloves and whatever count, like the original.
        ("gloves\nwhatever\nclover\n", {"love": 2, "hate": 1}),
        # A line counts once however many times it holds the keyword.
        ("love love love\nlovelove\n", {"love": 2, "hate": 0}),
        # A last line without a newline still counts.
        ("hate\nlove", {"love": 1, "hate": 1}),
        # Empty text, empty lines.
        ("", {"love": 0, "hate": 0}),
        ("\n\n\r\n\n", {"love": 0, "hate": 0}),
        # A lone \r is not a line end (the contract names \n and \r\n).
        ("love\rlove\r", {"love": 1, "hate": 0}),
        # Non-ASCII around ASCII keywords: curly quotes, accents, CJK, emoji.
        ("“Love,” she said\n愛 love 😀\nhé HATE\n", {"love": 2, "hate": 1}),
        # The Kelvin sign lower-cases to ASCII k; dotted İ to i + combining dot.
        ("\u212aind\nkind\n", {"kind": 2}),
        ("L\u0130VE\n", {"love": 0, "li": 1}),
    ],
)
def test_edge_cases(text: str, expected: dict[str, int]) -> None:
    assert count_keyword_lines([text.encode()], tuple(expected)) == expected


@pytest.mark.parametrize(
    ("keywords", "text", "expected"),
    [
        # Non-ASCII keywords fold like the text does.
        (("über", "café"), "ÜBER alles\nCAFÉ\ncafé über\n", {"über": 2, "café": 2}),
        (("любовь",), "ЛЮБОВЬ\nлюбовью\nlove\n", {"любовь": 2}),
        # Keywords arrive lower-cased from settings, but the counter does not rely on it.
        (("LOVE",), "love\n", {"love": 1}),
        # Keywords that can never sit inside one line count nothing rather than everything.
        (("", "a\nb"), "a\nb\n", {"": 0, "a\nb": 0}),
    ],
)
def test_keywords(keywords: tuple[str, ...], text: str, expected: dict[str, int]) -> None:
    assert count_keyword_lines([text.encode()], keywords) == expected


@pytest.mark.parametrize(
    ("charset", "data", "expected"),
    [
        # Declared Latin-1: é is one byte.
        ("iso-8859-1", "CAFÉ love\ncafé\n".encode("latin-1"), {"café": 2, "love": 1}),
        # Declared us-ascii but really UTF-8 (Gutenberg does that): decoded as UTF-8.
        ("us-ascii", "café LOVE\n".encode(), {"café": 1, "love": 1}),
        # Bad bytes in the declared UTF-8 are replaced, and the rest still counts.
        ("utf-8", b"lo\xffve\nlove\xff\n\xc3love\n\xe2\x84", {"café": 0, "love": 2}),
        # UTF-16 with a BOM: not ASCII-compatible, so decoded as text.
        ("utf-16", "love\r\nhate love\r\n".encode("utf-16"), {"café": 0, "love": 2}),
        (None, b"love\n", {"café": 0, "love": 1}),
    ],
)
def test_charsets(charset: str | None, data: bytes, expected: dict[str, int]) -> None:
    # Byte by byte, too: a multi-byte character split between pieces must still decode.
    assert count_keyword_lines([data], tuple(expected), charset) == expected
    assert (
        count_keyword_lines([data[i : i + 1] for i in range(len(data))], tuple(expected), charset) == expected
    )


def test_unknown_charset_is_a_lookup_error() -> None:
    with pytest.raises(LookupError):
        resolve_charset("x-no-such-charset")


def test_size_cap() -> None:
    counter = LineCounter(KEYWORDS, max_bytes=10)
    counter.feed(b"love\nlove\n")
    with pytest.raises(TextTooLarge):
        counter.feed(b"x")


def test_ascii_lowering_characters_are_all_of_them() -> None:
    # The raw-bytes path is exact only if these are the only non-ASCII characters
    # whose lower case contains ASCII; a new Unicode version could add one.
    found = [
        chr(cp)
        for cp in range(0x80, sys.maxunicode + 1)
        if not 0xD800 <= cp < 0xE000 and any(ord(c) < 0x80 for c in chr(cp).lower())
    ]
    assert tuple(found) == ASCII_LOWERING_CHARACTERS


@pytest.mark.parametrize("seed", range(40))
def test_matches_the_definition_on_random_text_in_random_pieces(seed: int) -> None:
    # Guards the streaming: matches across piece boundaries, \r\n split between
    # pieces, long lines folded down, the bytes and str paths, odd characters.
    rng = random.Random(seed)
    alphabet = [
        "love",
        "LOVE",
        "lo",
        "ve",
        "hate",
        "Joy",
        "j",
        "fear",
        " ",
        "\n",
        "\r\n",
        "\r",
        "é",
        "“",
        "\u212a",
        "\u0130",
        "ς",
        "Σ",
        "x" * 7,
    ]
    text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 400)))
    keywords = rng.choice([KEYWORDS, ("love", "k", "i"), ("é", "love"), ("ove\r",)])
    charset = rng.choice(["utf-8", "utf-8", "utf-16-le", "utf-8-sig"])
    data = text.encode(charset)
    sizes = [rng.randrange(1, 40) for _ in range(rng.randrange(0, 30))]
    counter = LineCounter(keywords, charset, max_line=rng.choice([1, 8, 64, 1 << 20]))
    for piece in pieces(data, sizes):
        counter.feed(piece)
    assert counter.finish() == reference_counts(text.removeprefix("\ufeff"), counter.keywords)


@pytest.mark.parametrize("seed", range(10))
def test_bad_utf8_bytes_count_as_decoded_text(seed: int) -> None:
    # The raw-bytes path must agree with decoding (errors replaced) and then searching.
    rng = random.Random(seed)
    data = bytes(rng.choice(b"loveLOVE\n\r \x80\xbf\xc3\xe2\xff\xc4\xb0\x84\xaa") for _ in range(2000))
    decoded = data.decode("utf-8", "replace")
    assert count_keyword_lines(pieces(data, [7, 100, 3, 500]), ("love", "ve", "k")) == reference_counts(
        decoded, ("love", "ve", "k")
    )


def test_memory_stays_bounded_on_a_large_text() -> None:
    # 8 MB in 64 KiB pieces (like a streamed download): peak memory is a few pieces, not the book.
    line = "It was the best of times, it was the worst of times; “love” and hate.\r\n".encode()
    chunk = line * (65536 // len(line))
    total = 8 * 1024 * 1024
    counter = LineCounter(KEYWORDS)
    tracemalloc.start()
    try:
        fed = 0
        while fed < total:
            counter.feed(chunk)
            fed += len(chunk)
        counts = counter.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    lines = fed // len(line)
    assert counts == {"love": lines, "hate": lines, "joy": 0, "fear": 0}
    assert peak < 1024 * 1024


def test_memory_stays_bounded_on_a_text_without_newlines() -> None:
    counter = LineCounter(("love", "hate"), max_line=4096)
    tracemalloc.start()
    try:
        for _ in range(200):
            counter.feed(b"x" * 65536)
        counter.feed(b"lo")
        counter.feed(b"ve" + b"y" * 65536 + b"\nhate")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert counter.finish() == {"love": 1, "hate": 1}
    assert peak < 1024 * 1024


def test_the_utf8_screen_covers_every_ascii_lowering_character() -> None:
    from synergychat.counting import _ASCII_LOWERING_UTF8

    assert sorted(sequence.decode() for _, sequence in _ASCII_LOWERING_UTF8) == sorted(
        ASCII_LOWERING_CHARACTERS
    )
    assert all(rare in sequence for rare, sequence in _ASCII_LOWERING_UTF8)
