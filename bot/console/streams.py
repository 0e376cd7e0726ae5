"""Server-Sent Events: a page keeps one request open and the server writes an event
whenever what it shows has changed (the database is polled about once a second; a
comment every 15 s keeps proxies from closing the idle line). A stream lasts five
minutes, then the browser reconnects by itself, and ends early when the person signs out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from sanic import Request

from bot.console.security import SESSION_COOKIE
from bot.console.signin import find_session
from bot.console.web import console, now, run

POLL_SECONDS = 1.0
KEEP_ALIVE_SECONDS = 15.0
LIFETIME_SECONDS = 300.0
SESSION_CHECK_SECONDS = 10.0

Events = list[tuple[str, str]]  # (event name, JSON data on one line)


async def stream(request: Request, changes: Callable[[], Awaitable[Events]]) -> None:
    """Answer with an event stream fed by `changes()`, called once per poll."""
    response = await request.respond(
        content_type="text/event-stream; charset=utf-8", headers={"X-Accel-Buffering": "no"}
    )
    await response.send("retry: 2000\n\n")
    started = last_sent = last_check = time.monotonic()
    token = request.cookies.get(SESSION_COOKIE)
    while time.monotonic() - started < LIFETIME_SECONDS:
        if time.monotonic() - last_check >= SESSION_CHECK_SECONDS:
            if await run(find_session, console(request).sessions, token, now()) is None:
                break
            last_check = time.monotonic()
        events = await changes()
        for name, data in events:
            await response.send(f"event: {name}\ndata: {data}\n\n")
        if events:
            last_sent = time.monotonic()
        elif time.monotonic() - last_sent >= KEEP_ALIVE_SECONDS:
            await response.send(": keep-alive\n\n")
            last_sent = time.monotonic()
        await asyncio.sleep(POLL_SECONDS)
    await response.eof()
