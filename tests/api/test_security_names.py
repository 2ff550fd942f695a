"""The bot's name can't be imitated: names are compared as they read (TR39 skeletons)."""

from __future__ import annotations

from typing import Any

import pytest

from synergychat.validation import name_skeletons, reserved_skeletons
from tests.conftest import expect_json

LOOK_ALIKES = [
    "crawler-b\u043et",  # Cyrillic о
    "cr\u0430wler-b\u03bft",  # Cyrillic а, Greek ο
    "\u0441r\u0430wl\u0435r-b\u043et",  # as many Cyrillic letters as there are
    "crawler\u2010bot",  # HYPHEN, not HYPHEN-MINUS
    "crawler\u2011bot",  # NON-BREAKING HYPHEN
    "crawler\u2013bot",  # EN DASH
    "crawler_bot",
    "crawler bot",
    "crawler.bot",
    "crawler\u00b7bot",  # MIDDLE DOT
    "crawlerbot",
    "crawler--bot",
    "Crawler Bot",
    "crawI\u0435r-bot",  # capital I for l, as sans-serif fonts draw it
    "craw1er-bot",  # digit one for l
    "crawler-b0t",  # digit zero for o
    "\uff43\uff52\uff41\uff57\uff4c\uff45\uff52\uff0d\uff42\uff4f\uff54",  # fullwidth
    # MATHEMATICAL BOLD letters
    "\U0001d41c\U0001d42b\U0001d41a\U0001d430\U0001d425\U0001d41e\U0001d42b-\U0001d41b\U0001d428\U0001d42d",
]


@pytest.mark.parametrize("name", LOOK_ALIKES)
async def test_look_alikes_of_the_bot_are_refused(api_client: Any, name: str) -> None:
    response = await api_client.post("/messages", json={"AuthorUsername": name, "Text": "Beep boop!"})
    error = (await expect_json(response, 400))["error"]
    assert error == f"AuthorUsername {name} is reserved for the bot"
    assert await expect_json(await api_client.get("/messages"), 200) == []


@pytest.mark.parametrize(
    "name",
    [
        "crawler",
        "bot",
        "crawler-bots",
        "crawler-bot-fan",
        "crawler-b\u00f6t",  # a visible accent is another name
        "Zo\u00eb",
        "\u042f\u0440\u043e\u0441\u043b\u0430\u0432",  # Cyrillic names stay welcome
        "\u674e\u96f7",
        "m\u00fcller_42",
    ],
)
async def test_other_names_are_welcome(api_client: Any, name: str) -> None:
    response = await api_client.post("/messages", json={"AuthorUsername": name, "Text": "hello"})
    messages = await expect_json(response, 201)
    assert messages[-1]["AuthorUsername"] == name


def test_skeletons_compare_names_as_they_read() -> None:
    # Skeletons only compare names; what is stored and shown is what the user typed.
    assert reserved_skeletons() == {"crawlerbot"}
    assert name_skeletons("Alice") & name_skeletons("ALICE")
    assert name_skeletons("paypal") & name_skeletons("p\u0430yp\u0430l")
    assert not name_skeletons("alice") & name_skeletons("bob")
