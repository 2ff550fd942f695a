"""The crawl's progress on the page, and crawler-bot's /stats numbers drawn as bars beside its words.

A real ``--role all`` process reads the fake catalogue (8 books, love 14 and hate 6 lines in
all, 7 books with a match); the page polls the api's /crawl/progress and draws the bot's reply.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from synergychat.bot import STATS_REPLY_ENTRY_PATTERN, STATS_REPLY_PATTERN, describe_totals
from synergychat.stats import KeywordTotals
from synergychat.transport import CatalogueStatus
from tests.crawler.conftest import SAMPLE_COUNTS
from tests.process.test_crawler_processes import crawler_env, fake_gutendex_thread, wait_for_status
from tests.support.processes import RunningRole

from .accessibility import axe_violations, record_speech, spoken_texts
from .chat import expect_live, message_log, send
from .conftest import WatchedPage, is_failed_request_log

pytestmark = pytest.mark.browser

LOVE = sum(count for (keyword, _), count in SAMPLE_COUNTS.items() if keyword == "love")
HATE = sum(count for (keyword, _), count in SAMPLE_COUNTS.items() if keyword == "hate")
POLL_MS = 30_000


@pytest.fixture
def crawled(start_role: Callable[..., RunningRole], tmp_path: Any) -> Iterator[RunningRole]:
    """``--role all`` that has read the whole fake catalogue."""
    with fake_gutendex_thread() as gutendex:
        role = start_role("all", env=crawler_env(gutendex, tmp_path / "crawler-data"))
        wait_for_status(f"{role.url}/crawler/status", lambda status: status["state"] == "waiting")
        yield role


def set_visibility(page: Page, state: str) -> None:
    """What the browser does when the tab is hidden or shown again (headless never hides it)."""
    page.evaluate(
        """(state) => {
            Object.defineProperty(document, 'visibilityState', { value: state, configurable: true });
            document.dispatchEvent(new Event('visibilitychange'));
        }""",
        state,
    )


def wait_for_count(page: Page, requests: list[str], count: int) -> None:
    for _ in range(30):
        if len(requests) >= count:
            break
        page.wait_for_timeout(100)
    page.wait_for_timeout(200)  # and no more than that
    assert len(requests) == count, requests


def test_progress_and_a_stats_chart_readable_as_text(
    crawled: RunningRole, open_page: Callable[..., WatchedPage]
) -> None:
    watched = open_page(crawled.url + "/", before_load=record_speech)
    page = watched.page
    expect_live(page)
    crawl = page.get_by_role("region", name="Book crawler")
    expect(crawl.locator(".crawl-text")).to_have_text(
        "Crawler: 8 of 8 books (100.0%) · this pass is done, looking for new books within the hour"
    )
    bar = page.get_by_role("progressbar", name=re.compile(r"^Crawler: 8 of 8 books"))
    expect(bar).to_have_attribute("value", "100")

    send(page, "ann", "/stats")
    reply = message_log(page).locator(".msg-bot")
    expect(reply).to_have_count(1)
    # The words stay as the bot wrote them; the chart is a list beside them, read as text.
    expect(reply.locator(".msg-text")).to_contain_text(f"love: {LOVE}, hate: {HATE} (in 7 books).")
    chart = reply.get_by_role("figure", name="Matches per keyword, in 7 books")
    expect(chart.get_by_role("listitem")).to_have_text([f"love {LOVE}", f"hate {HATE}"])
    widths = chart.locator("rect").evaluate_all("rects => rects.map(r => r.getBoundingClientRect().width)")
    # The bars are drawn in proportion (the largest fills its track).
    assert widths[0] > 0 and widths[1] / widths[0] == pytest.approx(HATE / LOVE, rel=0.05)

    assert axe_violations(page) == []
    # Without motion, so no colour is caught halfway through the switch.
    page.emulate_media(color_scheme="dark", reduced_motion="reduce")
    assert axe_violations(page) == []
    # Forced colours: the bars take the user's text colour, still drawn.
    page.emulate_media(forced_colors="active")
    fill = chart.locator("rect").first.evaluate("r => getComputedStyle(r).fill")
    text_colour = chart.locator(".chart-key").first.evaluate("k => getComputedStyle(k).color")
    assert fill == text_colour and chart.locator("rect").first.bounding_box() is not None

    # The same words from a person are only words: only the bot's replies are read.
    send(page, "bob", reply.locator(".msg-text").text_content() or "")
    expect(message_log(page).locator(".msg")).to_have_count(3)
    expect(message_log(page).locator("figure")).to_have_count(1)

    # Nothing about the crawl was said (no live region).
    said = spoken_texts(page)
    assert not [text for text in said if "Crawler:" in text], said
    watched.assert_clean()


def test_polls_every_30_s_only_while_visible_and_silently(
    crawled: RunningRole, open_page: Callable[..., WatchedPage]
) -> None:
    requests: list[str] = []

    def before_load(page: Page) -> None:
        record_speech(page)
        # The page's timers on a clock the test moves: 30 s pass in no time.
        page.clock.install()
        page.on(
            "request",
            lambda request: requests.append(request.url) if "crawl/progress" in request.url else None,
        )

    watched = open_page(crawled.url + "/", before_load=before_load)
    page = watched.page
    expect(page.locator("#crawl-text")).to_contain_text("Crawler: 8 of 8 books")
    wait_for_count(page, requests, 1)
    page.clock.run_for(POLL_MS + 1000)
    wait_for_count(page, requests, 2)

    # Hidden: not asked, however long.
    set_visibility(page, "hidden")
    page.clock.run_for(4 * POLL_MS)
    wait_for_count(page, requests, 2)
    # Shown again: asked at once, then every 30 s.
    set_visibility(page, "visible")
    wait_for_count(page, requests, 3)
    page.clock.run_for(POLL_MS + 1000)
    wait_for_count(page, requests, 4)
    # Polls that change nothing say nothing.
    assert not [text for text in spoken_texts(page) if "Crawler" in text]
    watched.assert_clean()


def test_honest_text_without_a_crawler(
    start_role: Callable[..., RunningRole], open_page: Callable[..., WatchedPage]
) -> None:
    api = start_role("api")
    web = start_role("web", env={"API_URL": api.url})
    watched = open_page(web.url + "/")
    page = watched.page
    expect(page.locator("#crawl-text")).to_have_text(
        "Crawler: unavailable (no crawler is configured for this chat)"
    )
    expect(page.locator("#crawl-bar")).to_be_hidden()
    assert axe_violations(page) == []
    # The 503 is logged by Chromium; nothing else may be.
    watched.assert_clean(allow=is_failed_request_log)


# Replies of every shape describe_totals writes, and what the page must read from them.
REPLIES: list[tuple[KeywordTotals, CatalogueStatus | None, dict[str, Any] | None]] = [
    ({"totals": {"love": 30, "hate": 12}, "books": 5}, None, {"total": 42, "books": 5}),
    ({"totals": {"love": 1}, "books": 1}, None, {"total": 1, "books": 1}),
    # Zero counts are left out of the breakdown; none at all: no breakdown, no chart.
    ({"totals": {"love": 3, "joy": 0}, "books": 2}, None, {"total": 3, "books": 2}),
    ({"totals": {"love": 0}, "books": 0}, None, None),
    ({"totals": {}, "books": 0}, None, None),
    # Keywords are any text without a comma: spaces, colons, brackets, other scripts.
    (
        {"totals": {"a: b": 7, "(in 2 books).": 2, "любовь": 1234567, "x y": 5}, "books": 9},
        None,
        {"total": 1234581, "books": 9},
    ),
    # The catalogue down: the other opening sentence.
    (
        {"totals": {"love": 17}, "books": 1},
        CatalogueStatus(reachable=False, since=None),
        {"total": 17, "books": 1},
    ),
]


def test_the_page_reads_every_reply_the_bot_writes(
    crawled: RunningRole, open_page: Callable[..., WatchedPage]
) -> None:
    watched = open_page(crawled.url + "/")
    page = watched.page
    patterns = page.evaluate(
        "async () => { const m = await import('./chart.js');"
        " return [m.STATS_REPLY.source, m.STATS_REPLY_ENTRY.source]; }"
    )
    # One grammar: the page's patterns are the bot's.
    assert patterns == [STATS_REPLY_PATTERN, STATS_REPLY_ENTRY_PATTERN]

    for totals, catalogue, expected in REPLIES:
        text = describe_totals(totals, 12, catalogue)
        if expected is not None:
            ordered = sorted(
                ((keyword, count) for keyword, count in totals["totals"].items() if count),
                key=lambda item: -item[1],
            )
            expected = {**expected, "entries": [{"keyword": k, "count": c} for k, c in ordered]}
        parsed = page.evaluate("async (text) => (await import('./chart.js')).parseStatsReply(text)", text)
        assert parsed == expected, text
        # The same grammar read in Python gives the same numbers.
        match = re.search(STATS_REPLY_PATTERN, text)
        assert (match is None) == (expected is None)
        if match is not None and expected is not None:
            entries = re.findall(STATS_REPLY_ENTRY_PATTERN, match.group(2))
            assert [{"keyword": k, "count": int(c)} for k, c in entries] == expected["entries"]
    watched.assert_clean()
