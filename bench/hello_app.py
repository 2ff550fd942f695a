"""The ceiling: aiohttp's hello world, as its docs write it, with no access log, on asyncio's
loop (the default) or uvloop's.

python bench/hello_app.py PORT [asyncio|uvloop]
"""

from __future__ import annotations

import sys

from aiohttp import web


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="Hello, world")


app = web.Application()
app.router.add_get("/", hello)

if __name__ == "__main__":
    loop = None
    if sys.argv[2:] == ["uvloop"]:
        import uvloop

        loop = uvloop.new_event_loop()
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None, loop=loop)
