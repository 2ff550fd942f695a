"""What the simulated people say: short, varied, mostly plain chat, sometimes long or not ASCII.

Nothing here is a blocked word of the api's default list, so what the api
stores is what was sent. Lengths follow chat: most messages are a few words,
a few are a pasted paragraph (well under the api's 4,000 characters).
"""

from __future__ import annotations

import random

FIRST_NAMES = (
    "ada",
    "alan",
    "grace",
    "linus",
    "margaret",
    "dennis",
    "barbara",
    "ken",
    "radia",
    "guido",
    "frances",
    "tim",
    "katherine",
    "edsger",
    "hedy",
    "john",
    "sophie",
    "niklaus",
    "karen",
    "donald",
)
OPENERS = ("hi all", "morning!", "hey", "hello from the night shift", "back again", "o/", "evening folks")
SUBJECTS = (
    "the deploy",
    "my pod",
    "the build",
    "this chart",
    "the new node",
    "our api",
    "the cache",
    "lunch",
)
VERBS = (
    "looks fine",
    "is slow again",
    "just came up",
    "keeps restarting",
    "scaled out",
    "is green now",
    "needs a review",
    "was faster yesterday",
)
ASIDES = (
    "lol",
    "no idea why",
    "anyone?",
    "will check later",
    "ok",
    "+1",
    "same here",
    "brb",
    "nice 🎉",
    "c'est la vie",
    "naïve question: why?",
    "ship it",
    "thanks!",
    "👀",
)
READING = ("Frankenstein", "Dracula", "Moby Dick", "Pride and Prejudice", "Jekyll and Hyde")
STATS_COMMANDS = (
    "/stats",
    "/stats keywords=love,hate",
    "/stats keywords=joy",
    "/stats title=Frankenstein",
    '/stats keywords=fear title="Jekyll and Hyde"',
)


def person_name(index: int, rng: random.Random) -> str:
    """Visibly a simulated person (``loadgen-07-grace``), unique in the run, well under 64 characters."""
    return f"loadgen-{index:02d}-{rng.choice(FIRST_NAMES)}"


def chat_message(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.15:
        return rng.choice(OPENERS)
    if roll < 0.40:
        return rng.choice(ASIDES)
    if roll < 0.97:
        text = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)}"
        if rng.random() < 0.4:
            text += f", {rng.choice(ASIDES)}"
        if rng.random() < 0.1:
            text += f" (reading {rng.choice(READING)} meanwhile)"
        return text[0].upper() + text[1:]
    # Now and then someone pastes a log excerpt or a long thought.
    sentences = [
        f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(VERBS)}." for _ in range(rng.randint(8, 40))
    ]
    return " ".join(sentences)


def stats_command(rng: random.Random) -> str:
    return rng.choice(STATS_COMMANDS)
