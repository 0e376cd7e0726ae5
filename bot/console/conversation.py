"""The conversation view (会话详情): the whole transcript, live; the ticket's fields and
history; the customer's account, bills, area outages and other open tickets, personal
data masked until the agent presses "显示" (which the ticket's history records).

Who may act: the agent holding the ticket, or a supervisor or admin; everyone else with
the queue sees it read-only, with who holds it. The actions are in ticket_actions.py;
flagging a customer's line for the trainers (标记给训练师) is in training.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sanic import Request, Sanic
from sanic.response import HTTPResponse
from sqlalchemy.orm import sessionmaker

from bot.console import labels, staff
from bot.console.staff import StaffUser
from bot.console.streams import Events, stream
from bot.console.web import allow, console, may, now, render, run, to_json, user_of
from bot.handoff import service
from bot.handoff.service import Handoff, HandoffMessage
from bot.masking import mask_account, mask_name, mask_phone
from bot.outages import known_area_in
from bot.tickets.errors import TicketNotFound
from bot.tickets.records import Ticket
from bot.tickets.service import (
    conversation_tickets,
    find_ticket,
    open_tickets,
    ticket_events,
    ticket_transcript,
)
from bot.utility import UtilityUnavailable, utility_data

NOTICES = {
    "claimed": "已接单，您现在可以回复客户",
    "replied": "回复已发送",
    "reply_failed": "回复未能送达客户，请稍后点“重新发送”",
    "retried": "已重新发送",
    "noted": "备注已添加",
    "updated": "工单信息已保存",
    "resolved": "工单已办结，办结结果已发给客户",
    "resolved_offline": "工单已办结（客户不在线上会话中，请回访时告知办结结果）",
    "resolved_undelivered": "工单已办结，但办结结果未能实时发给客户，已记入备注，请回访时告知",
    "handed_back": "会话已交回机器人",
    "handed_back_undelivered": "会话已交回机器人，但未能通知客户（对话服务暂时连不上）",
    "flagged": "已标记给训练师，谢谢！训练师会据此教机器人听懂这类说法",
}


@dataclass(frozen=True)
class Access:
    """What this person may do with this ticket."""

    holder: str | None
    mine: bool
    act: bool  # notes, fields, personal data
    reply: bool  # the live conversation: reply, retry, hand back
    resolve: bool
    claim: bool


def access(user: StaffUser, ticket: Ticket, handoff: Handoff | None) -> Access:
    holder = ticket.assigned_agent
    mine = holder == user.username
    act = ticket.status != "closed" and (mine or may(user, "override"))
    live = handoff is not None and handoff.is_live
    waiting = handoff is not None and handoff.status == "waiting"
    waiting_for_me = mine and waiting
    return Access(
        holder=holder,
        mine=mine,
        act=act,
        reply=act and live and not waiting_for_me,
        resolve=act and ticket.is_open,
        # a customer waiting on the line can be taken by any agent, even on a held ticket
        claim=ticket.is_open and (holder is None or waiting),
    )


def the_ticket(sessions: sessionmaker, number: str) -> Ticket:
    ticket = find_ticket(sessions, number)
    if ticket is None:
        raise TicketNotFound(number)
    return ticket


def message_view(message: HandoffMessage, names: dict[str, str]) -> dict:
    return {
        "id": message.id,
        "speaker": message.speaker,
        "speaker_name": labels.SPEAKERS.get(message.speaker, message.speaker),
        "author_name": names.get(message.author, message.author) if message.author else None,
        "text": message.text,
        "at": message.at.isoformat(),
        "at_text": labels.when(message.at),
        "delivered": message.delivered_at is not None,
        "error": message.error,
    }


def state_view(ticket: Ticket, handoff: Handoff | None, names: dict[str, str]) -> dict:
    state = handoff.status if handoff is not None else None
    return {
        "status": ticket.status,
        "status_name": ticket.status_name,
        "state": state,
        "state_name": labels.handoff_state(state),
        "holder": ticket.assigned_agent,
        "holder_name": names.get(ticket.assigned_agent, ticket.assigned_agent) if ticket.assigned_agent else None,
        # the customer's mood rises during the chat (the ticket keeps the worst)
        "frustration": ticket.frustration,
        "frustration_word": labels.frustration_word(ticket.frustration),
    }


def gather(sessions: sessionmaker, number: str, user: StaffUser, moment: datetime) -> dict:
    """Everything the page shows."""
    ticket = the_ticket(sessions, number)
    handoff = service.handoff_for_ticket(sessions, ticket.number)
    names = staff.display_names(sessions)
    messages = [message_view(m, names) for m in service.messages(sessions, ticket.number)]
    events = [
        {
            "at": e.at,
            "actor": labels.actor_name(e.actor, names),
            "key": e.kind,
            "kind": labels.EVENT_KINDS.get(e.kind, e.kind),
            "text": labels.describe_event(e.kind, e.detail, names),
        }
        for e in ticket_events(sessions, ticket.number)
    ]
    return {
        "ticket": ticket,
        "handoff": handoff,
        "state": state_view(ticket, handoff, names),
        "access": access(user, ticket, handoff),
        "transcript": ticket_transcript(sessions, ticket.number),
        "messages": messages,
        "last_id": messages[-1]["id"] if messages else 0,
        "events": events,
        "customer": customer(sessions, ticket, moment),
    }


def customer(sessions: sessionmaker, ticket: Ticket, moment: datetime) -> dict:
    """The account behind the ticket, its last three bills, outages in its area and the
    customer's other open tickets; personal data masked."""
    context: dict = {"account": None, "bills": [], "outages": [], "area": None, "problem": None}
    # the place of a hazard is a street corner; the address on file is personal data
    context["place"] = mask_address(ticket.place) if ticket.place and ticket.account_number else ticket.place
    utility = utility_data()
    try:
        account = utility.account(ticket.account_number) if ticket.account_number else None
        area = account.area if account is not None else known_area_in(utility, ticket.place)
        if account is not None:
            context["account"] = {
                "number": mask_account(account.number),
                "holder_name": mask_name(account.holder_name),
                "phone": mask_phone(account.phone),
                "address": mask_address(account.address),
                "status": "已停电（欠费）" if account.status == "disconnected" else "正常",
                "key_account": account.key_account,
            }
            context["bills"] = utility.bills(account.number, 3)
            if ticket.place != account.address:
                context["place"] = ticket.place
        if area:
            context["area"] = area
            context["outages"] = utility.outages(area, moment)
    except UtilityUnavailable:
        context["problem"] = "公司营销系统暂时无法访问，账户信息稍后再看"
    if ticket.account_number:
        others = open_tickets(sessions, ticket.account_number)
    else:
        others = conversation_tickets(sessions, ticket.conversation_id)
    context["open_tickets"] = [t for t in others if t.number != ticket.number]
    context["callback_phone"] = mask_phone(ticket.callback_phone) if ticket.callback_phone else None
    context["account_number"] = mask_account(ticket.account_number) if ticket.account_number else None
    return context


def personal_data(ticket: Ticket) -> dict:
    """The unmasked values behind "显示"."""
    values = {"account_number": ticket.account_number, "callback_phone": ticket.callback_phone}
    if ticket.account_number:
        try:
            account = utility_data().account(ticket.account_number)
        except UtilityUnavailable:
            account = None
        if account is not None:
            values.update(holder_name=account.holder_name, phone=account.phone, address=account.address)
    return {name: value for name, value in values.items() if value}


def mask_address(address: str) -> str:
    """光明路****: the street stays (it says where), the number goes."""
    return address[:3] + "****" if len(address) > 3 else "****"


@allow("queue")
async def ticket_page(request: Request, number: str) -> HTTPResponse:
    return await page(request, number)


async def page(request: Request, number: str, revealed: dict | None = None) -> HTTPResponse:
    view = await run(gather, console(request).sessions, number, user_of(request), now())
    notice = NOTICES.get(request.args.get("notice", ""))
    # the customer's line just flagged for the trainers (标记给训练师, training.py)
    flagged = request.args.get("flagged", "")
    flagged_id = int(flagged) if flagged.isdigit() else None
    return render(request, "ticket.html", notice=notice, revealed=revealed or {}, flagged_id=flagged_id, **view)


@allow("queue")
async def ticket_stream(request: Request, number: str) -> None:
    sessions = console(request).sessions
    ticket = await run(the_ticket, sessions, number)
    try:
        after = int(request.args.get("after", "0"))
    except ValueError:
        after = 0
    seen: dict[int, tuple] = {}
    last_state: list[str] = []
    first = [True]

    def poll() -> tuple[list[dict], str]:
        names = staff.display_names(sessions)
        current = the_ticket(sessions, ticket.number)
        handoff = service.handoff_for_ticket(sessions, ticket.number)
        shown = [message_view(m, names) for m in service.messages(sessions, ticket.number)]
        return shown, to_json(state_view(current, handoff, names))

    async def changes() -> Events:
        shown, state = await run(poll)
        events: Events = []
        if state != (last_state[0] if last_state else None):
            last_state[:] = [state]
            events.append(("state", state))
        for message in shown:
            key = (message["delivered"], message["error"])
            known = message["id"] in seen or (first[0] and message["id"] <= after)
            if not known or seen.get(message["id"], key) != key:
                events.append(("message", to_json(message)))
            seen[message["id"]] = key
        first[0] = False
        return events

    await stream(request, changes)


def add_routes(app: Sanic) -> None:
    app.add_route(ticket_page, "/tickets/<number>", methods=["GET"], name="ticket_page")
    app.add_route(ticket_stream, "/api/tickets/<number>/stream", methods=["GET"], name="ticket_stream")
