"""The agents' queue: open tickets and live conversations, the most urgent first, kept
current over Server-Sent Events, and the claim (接单) that gives one to an agent."""

from __future__ import annotations

from datetime import datetime

from sanic import Request, Sanic
from sanic.response import HTTPResponse
from sqlalchemy.orm import sessionmaker

from bot.console import labels, staff
from bot.console.streams import Events, stream
from bot.console.web import (
    allow,
    answer,
    console,
    home_of,
    may,
    now,
    refuse,
    render,
    run,
    see_other,
    to_json,
    user_of,
    wants_json,
)
from bot.handoff import service
from bot.handoff.errors import AlreadyClaimed
from bot.handoff.service import QueueItem
from bot.tickets.service import short


def snapshot(sessions: sessionmaker, username: str, moment: datetime) -> list[dict]:
    """The queue as the page shows it (and the stream sends it)."""
    names = staff.display_names(sessions)
    return [_row(item, names, username) for item in service.queue(sessions, moment)]


def _row(item: QueueItem, names: dict[str, str], username: str) -> dict:
    ticket, handoff, last = item.ticket, item.handoff, item.last_message
    state = handoff.status if handoff is not None else None
    holder = ticket.assigned_agent
    said = None
    if last is not None:
        said = {"speaker": last.speaker, "speaker_name": labels.SPEAKERS.get(last.speaker, "")}
        said["text"] = short(last.text, 40)
    return {
        "number": ticket.number,
        "request_type": ticket.request_type_name,
        "category": ticket.category,
        "category_name": ticket.category_name,
        "priority": ticket.priority,
        "priority_name": labels.priority_name(ticket.priority),
        "status": ticket.status,
        "status_name": ticket.status_name,
        "state": state,
        "state_name": labels.handoff_state(state),
        "live": handoff is not None and handoff.is_live,
        "frustration": ticket.frustration,
        "frustration_word": labels.frustration_word(ticket.frustration),
        "holder": holder,
        "holder_name": names.get(holder, holder) if holder else None,
        "mine": holder == username,
        # a customer waiting on the line can be taken by any agent, even on a held ticket
        "claimable": holder is None or state == "waiting",
        "sla_due_at": ticket.sla_due_at.isoformat(),
        "created_at": ticket.created_at.isoformat(),
        "summary": short(ticket.description, 40),
        "last_message": said,
    }


@allow("signed_in")
async def queue_page(request: Request) -> HTTPResponse:
    user = user_of(request)
    if not may(user, "queue"):
        return see_other(home_of(user))
    items = await run(snapshot, console(request).sessions, user.username, now())
    return render(request, "queue.html", items=items)


@allow("queue")
async def queue_json(request: Request) -> HTTPResponse:
    moment = now()
    items = await run(snapshot, console(request).sessions, user_of(request).username, moment)
    return answer({"now": moment, "items": items})


@allow("queue")
async def queue_stream(request: Request) -> None:
    sessions, username = console(request).sessions, user_of(request).username
    last: list[str] = []

    async def changes() -> Events:
        moment = now()
        items = to_json(await run(snapshot, sessions, username, moment))
        if last and items == last[0]:
            return []
        last[:] = [items]
        return [("queue", f'{{"now": "{moment.isoformat()}", "items": {items}}}')]

    await stream(request, changes)


@allow("queue")
async def claim(request: Request, number: str) -> HTTPResponse:
    app, user = console(request), user_of(request)
    try:
        ticket = await run(service.claim, app.sessions, number, user.username, now())
    except AlreadyClaimed as taken:
        if taken.by is None:
            return refuse(request, 409, "该工单已办结，无需接单", number=taken.number)
        names = await run(staff.display_names, app.sessions)
        message = f"该会话已被 {names.get(taken.by, taken.by)} 接单"
        return refuse(request, 409, message, number=taken.number, by=taken.by, location=f"/tickets/{taken.number}")
    location = f"/tickets/{ticket.number}?notice=claimed"
    if wants_json(request):
        return answer({"number": ticket.number, "location": location})
    return see_other(location)


def add_routes(app: Sanic) -> None:
    app.add_route(queue_page, "/", methods=["GET"], name="queue_page")
    app.add_route(queue_json, "/api/queue", methods=["GET"], name="queue_json")
    app.add_route(queue_stream, "/api/queue/stream", methods=["GET"], name="queue_stream")
    app.add_route(claim, "/tickets/<number>/claim", methods=["POST"], name="claim")
