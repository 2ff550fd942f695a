"""/stats in the chat, over both transports, and every way the crawler can let us down."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from synergychat.api import create_api_app
from synergychat.settings import ApiSettings
from synergychat.transport import HttpCrawlerClient, InProcessCrawlerClient, NoCrawlerClient
from tests.conftest import expect_json, post_message
from tests.support.processes import free_port


async def test_stats_reply_sums_counts_with_breakdown(api_client: Any, stub_crawler: Any) -> None:
    page = await post_message(api_client, "ann", "/stats")
    user, bot = page[-2], page[-1]
    assert user["AuthorUsername"] == "ann" and user["Text"] == "/stats"
    assert bot["AuthorUsername"] == "crawler-bot"
    assert bot["Text"].startswith("Beep boop! I have found 30 matches so far in books matching your request.")
    assert "love: 27, hate: 3" in bot["Text"]
    assert "in 2 books" in bot["Text"] and "read 2 books so far" in bot["Text"]
    assert stub_crawler.queries == [((), "")]


async def test_stats_filters_reach_the_crawler(api_client: Any, stub_crawler: Any) -> None:
    page = await post_message(api_client, "ann", '/stats keywords=love title="frankenstein"')
    assert page[-1]["Text"].startswith("Beep boop! I have found 17 matches so far")
    assert stub_crawler.queries == [(("love",), "frankenstein")]


async def test_stats_names_keywords_the_crawler_does_not_count(api_client: Any) -> None:
    page = await post_message(api_client, "ann", "/stats keywords=love,pizza")
    assert "I don't count pizza; I count hate, love." in page[-1]["Text"]


async def test_stats_reply_never_leaks_crawler_address(api_client: Any) -> None:
    page = await post_message(api_client, "ann", "/stats")
    assert "http" not in page[-1]["Text"] and "127.0.0.1" not in page[-1]["Text"]


async def test_stats_syntax_error_is_a_bot_hint(api_client: Any) -> None:
    page = await post_message(api_client, "ann", "/stats author=Shelley")
    assert page[-1]["AuthorUsername"] == "crawler-bot"
    assert "I don't understand 'author='" in page[-1]["Text"]


async def test_slow_crawler_still_answers_within_the_timeout(api_client: Any, stub_crawler: Any) -> None:
    stub_crawler.delay = 0.3  # under the HTTP client's 1 s timeout in these tests
    page = await post_message(api_client, "ann", "/stats")
    assert page[-2]["Text"] == "/stats"
    assert page[-1]["Text"].startswith("Beep boop! I have found 30 matches")


async def test_crashed_crawler_gets_an_honest_reply(api_client: Any, stub_crawler: Any) -> None:
    stub_crawler.broken = True
    page = await post_message(api_client, "ann", "/stats")
    assert page[-2]["Text"] == "/stats"
    assert page[-1]["AuthorUsername"] == "crawler-bot"
    assert "can't reach the crawler right now" in page[-1]["Text"]


async def test_stuck_crawler_times_out_in_process_too(aiohttp_client: Any, stub_crawler: Any) -> None:
    stub_crawler.delay = 5
    settings = ApiSettings(crawler_timeout_seconds=0.3)
    client = await aiohttp_client(create_api_app(settings, InProcessCrawlerClient(stub_crawler)))
    page = await post_message(client, "ann", "/stats")
    assert "can't reach the crawler right now" in page[-1]["Text"]


async def test_not_configured(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_api_app(ApiSettings(), NoCrawlerClient()))
    page = await post_message(client, "ann", "/stats keywords=love")
    assert page[-1] == {**page[-1], "AuthorUsername": "crawler-bot", "Text": "Crawler worker not configured"}


async def api_with_http_crawler(aiohttp_client: Any, url: str, timeout: float = 1.0) -> Any:
    return await aiohttp_client(create_api_app(ApiSettings(), HttpCrawlerClient(url, timeout)))


async def test_crawler_down(aiohttp_client: Any) -> None:
    client = await api_with_http_crawler(aiohttp_client, f"http://127.0.0.1:{free_port()}")
    page = await post_message(client, "ann", "/stats")
    assert page[-2]["Text"] == "/stats"
    assert "can't reach the crawler right now" in page[-1]["Text"]
    assert "127.0.0.1" not in page[-1]["Text"]


async def test_crawler_too_slow_over_http(aiohttp_client: Any, aiohttp_server: Any) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return web.json_response([])

    app = web.Application()
    app.router.add_get("/stats", slow)
    server = await aiohttp_server(app)
    client = await api_with_http_crawler(aiohttp_client, str(server.make_url("/")), timeout=0.5)
    started = asyncio.get_running_loop().time()
    page = await post_message(client, "ann", "/stats")
    assert asyncio.get_running_loop().time() - started < 2.5
    assert "can't reach the crawler right now" in page[-1]["Text"]


async def test_crawler_answering_garbage(aiohttp_client: Any, aiohttp_server: Any) -> None:
    answers = iter(
        [
            web.Response(text="<html>502 Bad Gateway</html>", status=502),
            web.Response(text="<html>not json</html>", status=200),
            web.json_response({"Keyword": "love"}),
            web.json_response([{"Keyword": "love", "BookTitle": "X", "Count": "many"}]),
        ]
    )

    async def garbage(request: web.Request) -> web.Response:
        return next(answers)

    app = web.Application()
    app.router.add_get("/stats", garbage)
    server = await aiohttp_server(app)
    client = await api_with_http_crawler(aiohttp_client, str(server.make_url("/")))
    for _ in range(4):
        page = await post_message(client, "ann", "/stats")
        assert "can't reach the crawler right now" in page[-1]["Text"]


async def test_original_crawler_without_status_still_answers(
    aiohttp_client: Any, aiohttp_server: Any
) -> None:
    # The Go crawler has /stats and /healthz but no /status: counts alone make the reply.
    async def stats(request: web.Request) -> web.Response:
        return web.json_response([{"Keyword": "love", "BookTitle": "Emma", "Count": 4}])

    app = web.Application()
    app.router.add_get("/stats", stats)
    server = await aiohttp_server(app)
    client = await api_with_http_crawler(aiohttp_client, str(server.make_url("/")) + "/")
    page = await post_message(client, "ann", "/stats")
    assert page[-1]["Text"] == (
        "Beep boop! I have found 4 matches so far in books matching your request. love: 4 (in 1 book)."
    )


async def test_stats_message_and_reply_are_both_stored(api_client: Any) -> None:
    await post_message(api_client, "ann", "/stats keywords=hate")
    listed = await expect_json(await api_client.get("/messages"), 200)
    assert [m["AuthorUsername"] for m in listed] == ["ann", "crawler-bot"]


async def test_a_question_the_crawler_refuses_is_explained(aiohttp_client: Any, aiohttp_server: Any) -> None:
    # A newer crawler may refuse what this api lets through: say why, not "can't reach".
    async def refuse(request: web.Request) -> web.Response:
        return web.json_response({"error": "give title at most once"}, status=400)

    app = web.Application()
    app.router.add_get("/stats/totals", refuse)
    server = await aiohttp_server(app)
    client = await api_with_http_crawler(aiohttp_client, str(server.make_url("/")))
    page = await post_message(client, "ann", "/stats title=x")
    assert page[-1]["Text"].startswith("Beep boop! The crawler can't answer that: give title at most once.")


async def test_a_slow_crawler_costs_one_timeout_not_two(aiohttp_client: Any, aiohttp_server: Any) -> None:
    # totals and status are asked side by side: totals just in time plus a hung status
    # must not add up to more than one timeout.
    async def slow_totals(request: web.Request) -> web.Response:
        await asyncio.sleep(0.4)
        return web.json_response({"totals": {"love": 3}, "books": 1})

    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/stats/totals", slow_totals)
    app.router.add_get("/status", hang)
    server = await aiohttp_server(app)
    settings = ApiSettings(crawler_timeout_seconds=0.6)
    client = await aiohttp_client(create_api_app(settings, HttpCrawlerClient(str(server.make_url("/")), 5.0)))
    started = asyncio.get_running_loop().time()
    page = await post_message(client, "ann", "/stats")
    assert asyncio.get_running_loop().time() - started < 0.9
    assert page[-1]["Text"] == (
        "Beep boop! I have found 3 matches so far in books matching your request. love: 3 (in 1 book)."
    )
