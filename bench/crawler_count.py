"""Throughput of the crawler's keyword counting, beside ``grep -c -i -F`` on the same file.

    python bench/crawler_count.py                 # generates a 24 MB Gutenberg-like text
    python bench/crawler_count.py --file book.txt --runs 7

The counter runs once over the text for all keywords (as the crawler does); grep
runs once per keyword. Both are timed the same way (wall clock, median of
``--runs``), the file read into memory / the page cache first. MB is 10^6 bytes.
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synergychat.counting import count_keyword_lines
from synergychat.settings import DEFAULT_KEYWORDS

CHUNK = 64 * 1024  # what the crawler reads from the network at a time
COMMON_WORDS = [
    "the",
    "of",
    "and",
    "to",
    "a",
    "in",
    "that",
    "it",
    "was",
    "he",
    "i",
    "his",
    "you",
    "her",
    "had",
    "with",
    "as",
    "for",
    "she",
    "not",
    "at",
    "but",
    "be",
    "my",
    "on",
    "have",
    "him",
    "is",
    "said",
    "me",
    "which",
    "by",
    "so",
    "this",
    "all",
    "from",
    "they",
    "no",
    "were",
    "if",
    "would",
    "or",
    "when",
    "what",
    "there",
    "been",
    "one",
    "could",
    "very",
    "an",
    "who",
    "them",
    "mr",
    "we",
    "now",
    "more",
    "out",
    "do",
    "are",
    "up",
    "their",
    "your",
    "will",
    "little",
    "than",
    "then",
    "some",
    "into",
    "any",
    "well",
    "much",
    "about",
    "time",
    "can",
    "never",
    "know",
    "upon",
    "made",
    "such",
    "like",
    "before",
    "must",
    "see",
    "only",
    "over",
    "man",
    "again",
    "good",
    "may",
    "how",
    "great",
    "came",
    "should",
    "think",
    "thought",
    "say",
    "old",
    "our",
    "being",
    "down",
    "after",
    "here",
    "come",
    "own",
    "most",
    "long",
    "eyes",
    "lady",
    "heart",
    "house",
    "day",
    "face",
    "hand",
    "life",
    "mind",
    "way",
    "room",
    "door",
    "night",
    "father",
    "mother",
    "friend",
    "letter",
    "answer",
]
# Some rarer, some inside longer words ("gloves", "whatever", "fearful", "enjoyed").
KEYWORD_WORDS = (
    "love",
    "loved",
    "gloves",
    "hate",
    "whatever",
    "joy",
    "enjoyed",
    "sadness",
    "anger",
    "danger",
    "disgust",
    "fear",
    "fearful",
    "surprise",
    "Love",
    "FEAR",
)


def generate(path: Path, size: int, seed: int = 1) -> None:
    """A text shaped like a Gutenberg UTF-8 file: CRLF lines of ~70 characters, curly quotes."""
    rng = random.Random(seed)
    written = 0
    with open(path, "wb") as out:
        while written < size:
            lines = []
            for _ in range(2000):
                words = []
                for _ in range(rng.randint(9, 14)):
                    if rng.random() < 0.004:
                        words.append(rng.choice(KEYWORD_WORDS))
                    else:
                        words.append(rng.choice(COMMON_WORDS))
                line = " ".join(words)
                roll = rng.random()
                if roll < 0.15:
                    line = f"“{line.capitalize()},” said she."
                elif roll < 0.25:
                    line = line.replace(" i ", " I’d ", 1)
                elif roll < 0.27:
                    line = ""
                lines.append(line)
            data = ("\r\n".join(lines) + "\r\n").encode()
            out.write(data)
            written += len(data)


def median_seconds(run: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def grep_counts(path: Path, keywords: tuple[str, ...], locale: str) -> dict[str, int]:
    env = {**os.environ, "LC_ALL": locale}
    counts = {}
    for keyword in keywords:
        done = subprocess.run(
            ["grep", "-c", "-i", "-F", "-e", keyword, str(path)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if done.returncode not in (0, 1):  # 1 means no line matched
            raise RuntimeError(f"grep failed: {done.stderr.strip()}")
        counts[keyword] = int(done.stdout.strip() or 0)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--file", type=Path, help="a text to count (default: generate one)")
    parser.add_argument("--size-mb", type=float, default=24.0, help="size of the generated text (>= 20)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    keywords = DEFAULT_KEYWORDS

    with tempfile.TemporaryDirectory() as folder:
        path = args.file
        if path is None:
            path = Path(folder) / "bench.txt"
            generate(path, int(args.size_mb * 1_000_000))
        data = path.read_bytes()
        size_mb = len(data) / 1_000_000
        chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]
        lines = data.count(b"\n")
        print(
            f"text: {path if args.file else 'generated'}, {size_mb:.1f} MB, "
            f"{lines} lines; keywords: {','.join(keywords)}; median of {args.runs} runs"
        )

        ours = count_keyword_lines(chunks, keywords)
        our_seconds = median_seconds(lambda: count_keyword_lines(chunks, keywords), args.runs)
        our_rate = size_mb / our_seconds
        print(
            f"count_keyword_lines, UTF-8 text, all {len(keywords)} keywords in one pass: "
            f"{our_seconds * 1000:.0f} ms = {our_rate:.0f} MB/s"
        )
        # The slower path: decode, then lower-case and search str (a Latin-1 book, or non-ASCII keywords).
        str_seconds = median_seconds(lambda: count_keyword_lines(chunks, keywords, "iso-8859-1"), args.runs)
        print(
            f"count_keyword_lines, decoded as Latin-1 (the str path): "
            f"{str_seconds * 1000:.0f} ms = {size_mb / str_seconds:.0f} MB/s"
        )

        for locale in ("C.UTF-8", "C"):
            theirs = grep_counts(path, keywords, locale)
            grep_seconds = median_seconds(functools.partial(grep_counts, path, keywords, locale), args.runs)
            grep_rate = size_mb / grep_seconds
            agree = "same counts" if theirs == ours else f"COUNTS DIFFER: ours {ours}, grep {theirs}"
            print(
                f"grep -c -i -F, LC_ALL={locale}, once per keyword ({len(keywords)} runs): "
                f"{grep_seconds * 1000:.0f} ms = {grep_rate:.0f} MB/s; "
                f"ratio ours/grep = {our_rate / grep_rate:.2f}; {agree}"
            )
        print("counts:", ", ".join(f"{keyword} {count}" for keyword, count in ours.items()))


if __name__ == "__main__":
    main()
