"""What an agent does on the conversation view: reply, retry a failed delivery, add a
note, correct the ticket's fields, show the customer's personal data, resolve, hand back
to the bot, claim. Each checks that this person may act on this ticket, calls one
service function (which records the event, actor `agent:<username>`) and answers JSON
to scripts or sends the browser back to the page."""

from __future__ import annotations

from sanic import Request, Sanic
from sanic.response import HTTPResponse

from bot.console import labels, staff
from bot.console.conversation import Access, access, message_view, page, personal_data, the_ticket
from bot.console.web import PERMISSIONS, allow, answer, console, now, refuse, run, see_other, user_of, wants_json
from bot.handoff import desk, service
from bot.handoff.errors import NotLive, NotYours, RasaUnavailable
from bot.tickets.categories import CATEGORIES
from bot.tickets.errors import IllegalTransition, InvalidDraft
from bot.tickets.priority import PRIORITIES
from bot.tickets.service import add_note, update_ticket

MAX_TEXT = 2000
NOT_LIVE = "客户已不在线上会话中（已交回机器人、已办结或为回电工单），无法发送"


def _field(request: Request, name: str) -> str:
    """A text field of the form, or of the JSON body of a script's request."""
    if "application/json" in request.headers.get("content-type", ""):
        body = request.json if isinstance(request.json, dict) else {}
        value = body.get(name)
        return value.strip() if isinstance(value, str) else ""
    return (request.form.get(name) or "").strip()


async def _allowed(request: Request, number: str, need: str) -> tuple | HTTPResponse:
    """(ticket, handoff, access) when the person may do `need` (an Access field), else the refusal."""
    sessions, user = console(request).sessions, user_of(request)

    def look():
        ticket = the_ticket(sessions, number)
        handoff = service.handoff_for_ticket(sessions, ticket.number)
        return ticket, handoff, access(user, ticket, handoff), staff.display_names(sessions)

    ticket, handoff, rights, names = await run(look)
    if not getattr(rights, need):
        # 403: not this person's to do; 409: nobody could, as the ticket stands
        status = 409 if rights.act else 403
        return refuse(request, status, _why_not(rights, need, names), back=f"/tickets/{ticket.number}")
    return ticket, handoff, rights


def _why_not(rights: Access, need: str, names: dict[str, str]) -> str:
    holder = names.get(rights.holder, rights.holder) if rights.holder else None
    if not rights.act:
        if holder and not rights.mine:
            return f"该会话由 {holder} 处理，您只能查看"
        return "工单已归档，只能查看" if rights.mine else "请先接单再处理该工单"
    if need == "reply":
        return NOT_LIVE
    return "工单已办结，不能重复办结"


def _done(request: Request, number: str, notice: str, **body) -> HTTPResponse:
    if wants_json(request):
        return answer({"number": number, "notice": notice, **body})
    return see_other(f"/tickets/{number}?notice={notice}")


def _agent(request: Request) -> str:
    return user_of(request).username


def _override(request: Request, rights: Access) -> bool:
    return not rights.mine and user_of(request).role in PERMISSIONS["override"]


@allow("queue")
async def reply(request: Request, number: str) -> HTTPResponse:
    checked = await _allowed(request, number, "reply")
    if isinstance(checked, HTTPResponse):
        return checked
    ticket, _handoff, rights = checked
    text = _field(request, "text")
    if not text or len(text) > MAX_TEXT:
        return refuse(request, 400, f"回复内容不能为空，且不超过 {MAX_TEXT} 字", back=f"/tickets/{ticket.number}")
    sessions = console(request).sessions
    try:
        message = await run(
            desk.reply, sessions, ticket.number, _agent(request), text, now(), override=_override(request, rights)
        )
    except NotLive:
        return refuse(request, 409, NOT_LIVE, back=f"/tickets/{ticket.number}")
    except NotYours:
        return refuse(request, 403, "该会话由其他坐席处理，您只能查看", back=f"/tickets/{ticket.number}")
    names = await run(staff.display_names, sessions)
    notice = "reply_failed" if message.error else "replied"
    return _done(request, ticket.number, notice, message=message_view(message, names))


@allow("queue")
async def retry(request: Request, number: str) -> HTTPResponse:
    """Send the agent's undelivered replies again (the bot delivers every pending one)."""
    checked = await _allowed(request, number, "reply")
    if isinstance(checked, HTTPResponse):
        return checked
    ticket, handoff, _rights = checked
    try:
        await run(desk.trigger, handoff.conversation_id, "EXTERNAL_agent_reply")
    except RasaUnavailable:
        return _done(request, ticket.number, "reply_failed")
    return _done(request, ticket.number, "retried")


@allow("queue")
async def note(request: Request, number: str) -> HTTPResponse:
    checked = await _allowed(request, number, "act")
    if isinstance(checked, HTTPResponse):
        return checked
    ticket = checked[0]
    text = _field(request, "text")
    if not text or len(text) > MAX_TEXT:
        return refuse(request, 400, f"备注不能为空，且不超过 {MAX_TEXT} 字", back=f"/tickets/{ticket.number}")
    await run(add_note, console(request).sessions, ticket.number, f"agent:{_agent(request)}", text, now())
    return _done(request, ticket.number, "noted")


@allow("queue")
async def update_fields(request: Request, number: str) -> HTTPResponse:
    checked = await _allowed(request, number, "act")
    if isinstance(checked, HTTPResponse):
        return checked
    ticket = checked[0]
    category, priority = _field(request, "category"), _field(request, "priority")
    substantiated = {"yes": True, "no": False}.get(_field(request, "substantiated"))
    if (category and category not in CATEGORIES) or (priority and priority not in PRIORITIES):
        return refuse(request, 400, "类别或优先级无效", back=f"/tickets/{ticket.number}")
    try:
        await run(
            update_ticket,
            console(request).sessions,
            ticket.number,
            f"agent:{_agent(request)}",
            now(),
            category=category or None,
            priority=priority or None,
            substantiated=substantiated,
            unit=_field(request, "unit")[:128] or None,
        )
    except InvalidDraft:
        return refuse(request, 400, "工单信息有误，请检查后重试", back=f"/tickets/{ticket.number}")
    return _done(request, ticket.number, "updated")


@allow("queue")
async def show_personal_data(request: Request, number: str) -> HTTPResponse:
    checked = await _allowed(request, number, "act")
    if isinstance(checked, HTTPResponse):
        return checked
    ticket = checked[0]
    sessions = console(request).sessions
    values = await run(personal_data, ticket)
    what = "、".join(labels.PERSONAL_DATA.get(name, name) for name in values) or "无"
    await run(service.record_pii_view, sessions, ticket.number, _agent(request), now(), what)
    if wants_json(request):
        return answer({"number": ticket.number, "values": values})
    return await page(request, ticket.number, revealed=values)  # without scripts: the page, unmasked


@allow("queue")
async def resolve(request: Request, number: str) -> HTTPResponse:
    checked = await _allowed(request, number, "resolve")
    if isinstance(checked, HTTPResponse):
        return checked
    ticket, handoff, _rights = checked
    resolution = _field(request, "resolution")
    if not resolution or len(resolution) > MAX_TEXT:
        message = f"请填写办结结果（不超过 {MAX_TEXT} 字），客户会收到这段话"
        return refuse(request, 400, message, back=f"/tickets/{ticket.number}")
    try:
        await run(desk.resolve, console(request).sessions, ticket.number, _agent(request), resolution, now())
    except RasaUnavailable:
        return _done(request, ticket.number, "resolved_undelivered")
    except IllegalTransition:
        return refuse(request, 409, "工单当前状态不能办结", back=f"/tickets/{ticket.number}")
    live = handoff is not None and handoff.is_live
    return _done(request, ticket.number, "resolved" if live else "resolved_offline")


@allow("queue")
async def hand_back(request: Request, number: str) -> HTTPResponse:
    checked = await _allowed(request, number, "reply")
    if isinstance(checked, HTTPResponse):
        return checked
    ticket = checked[0]
    try:
        await run(desk.hand_back, console(request).sessions, ticket.number, _agent(request), now())
    except NotLive:
        return refuse(request, 409, "客户已不在线上会话中，无需交回", back=f"/tickets/{ticket.number}")
    except RasaUnavailable:
        return _done(request, ticket.number, "handed_back_undelivered")
    return _done(request, ticket.number, "handed_back")


def add_routes(app: Sanic) -> None:
    for handler, action in (
        (reply, "reply"),
        (retry, "retry"),
        (note, "notes"),
        (update_fields, "fields"),
        (show_personal_data, "personal-data"),
        (resolve, "resolve"),
        (hand_back, "hand-back"),
    ):
        app.add_route(handler, f"/tickets/<number>/{action}", methods=["POST"], name=f"ticket_{handler.__name__}")
