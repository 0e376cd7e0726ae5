"""Live handoff (转人工): a conversation handed to the agents, from the queue to its end.

A handoff hangs on a ticket (首问负责制: the customer always has a number). While it is
*live* (waiting for an agent, or active with one) the bot stays silent and every customer
message is kept here for the agent; it ends when the agent hands the conversation back to
the bot or resolves the ticket. Outside the online service hours a handoff is a *callback*:
the bot goes on answering, and an agent calls the customer before the ticket is due.

Every function takes the `sessions` factory first and the time as a naive local datetime
(`bot.clock.now()`), like the ticket service, and returns plain values.
"""

from __future__ import annotations

import contextlib
import logging
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sqlalchemy import case, func, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.config import load_settings
from bot.handoff.errors import AlreadyClaimed, NotLive, NotYours
from bot.handoff.models import ConversationRow, HandoffMessageRow, HandoffRow
from bot.tickets.errors import IllegalTransition
from bot.tickets.models import TicketRow
from bot.tickets.priority import PRIORITIES
from bot.tickets.records import CLOSED_STATUSES, Ticket
from bot.tickets.store import read, row_by_number, view, write
from bot.tickets.workflow import change_status, record_event, record_return_visit

log = logging.getLogger(__name__)
LIVE = ("waiting", "active")
# a wait is estimated only from enough recent pick-ups to mean something
WAIT_SAMPLE, WAIT_MIN_SAMPLES, WAIT_LOOKBACK_DAYS = 50, 3, 7


@dataclass(frozen=True)
class Handoff:
    id: int
    conversation_id: str
    ticket_number: str
    channel: str
    status: str  # waiting | active | ended | callback
    reason: str | None
    created_at: datetime
    claimed_by: str | None
    claimed_at: datetime | None
    reminder_sent_at: datetime | None
    ended_at: datetime | None
    ended_by: str | None
    end_reason: str | None  # handed_back | resolved
    last_customer_at: datetime | None

    @property
    def is_live(self) -> bool:
        return self.status in LIVE


@dataclass(frozen=True)
class HandoffMessage:
    id: int
    handoff_id: int
    at: datetime
    speaker: str  # customer | agent | bot
    author: str | None
    text: str
    delivered_at: datetime | None
    error: str | None


@dataclass(frozen=True)
class Start:
    """What the customer is told when the conversation is handed over."""

    handoff: Handoff
    ticket: Ticket
    position: int | None  # in the queue, 1 = next; None for a callback
    wait_minutes: int | None  # None when recent pick-ups do not support an estimate


@dataclass(frozen=True)
class QueueItem:
    ticket: Ticket
    handoff: Handoff | None  # the latest handoff of the ticket, if it had one
    last_message: HandoffMessage | None


# -- service hours -----------------------------------------------------------------


def service_hours() -> tuple[time, time] | None:
    """The online hours from HANDOFF_HOURS ("08:00-20:00"); None: around the clock."""
    spec = load_settings().handoff_hours
    if not spec:
        return None
    try:
        opens, closes = (part.strip() for part in spec.split("-"))
        return _clock(opens), _clock(closes)
    except ValueError:
        # a typo in the setting must not silence the bot: agents are then always online
        log.error("HANDOFF_HOURS=%r is not HH:MM-HH:MM; handoffs are live around the clock", spec)
        return None


def in_service_hours(now: datetime) -> bool:
    hours = service_hours()
    if hours is None:
        return True
    opens, closes = hours
    return opens <= now.time() < closes if opens < closes else not closes <= now.time() < opens


def _clock(text: str) -> time:
    hour, minute = (int(part) for part in text.split(":"))
    return time.max if hour == 24 else time(hour, minute)


# -- the customer's side (called by the bot's actions) ------------------------------


def start(
    sessions: sessionmaker, number: str, conversation_id: str, channel: str, reason: str | None, now: datetime
) -> Start:
    """Hand the conversation over for ticket `number`. Asking again while it is live gives
    the same handoff back; outside service hours it is a callback."""
    live = in_service_hours(now)

    def work(session: Session) -> Handoff:
        ticket = row_by_number(session, number)
        existing = _live(session, conversation_id)
        if existing is not None:
            return existing  # with the ticket it hangs on, which may be another of the conversation's
        row = HandoffRow(
            conversation_id=conversation_id,
            ticket_id=ticket.id,
            channel=channel,
            status="waiting" if live else "callback",
            reason=reason,
            created_at=now,
            live_key=conversation_id if live else None,
        )
        session.add(row)
        session.flush()
        kind = "handoff_queued" if live else "handoff_callback"
        record_event(session, ticket, "bot", now, kind, {"handoff": row.id, "reason": reason})
        return _handoff(row, ticket.number)

    try:
        handoff = write(sessions, work, integrity_errors=True)
    except IntegrityError:
        # the same conversation asked twice at once: the other request made it
        handoff = read(sessions, lambda session: _live(session, conversation_id))
        if handoff is None:
            raise
    ticket = read(sessions, lambda session: view(row_by_number(session, handoff.ticket_number)))
    if not handoff.is_live:
        return Start(handoff, ticket, None, None)
    position = queue_position(sessions, handoff.id)
    return Start(handoff, ticket, position, wait_estimate(sessions, position, now))


def live_handoff(sessions: sessionmaker, conversation_id: str) -> Handoff | None:
    return read(sessions, lambda session: _live(session, conversation_id))


def queue_position(sessions: sessionmaker, handoff_id: int) -> int:
    """1 for the next customer an agent will pick up, in the queue's own order."""

    def work(session: Session) -> int:
        waiting = session.execute(
            select(HandoffRow.id, TicketRow.priority, TicketRow.sla_due_at)
            .join(TicketRow, TicketRow.id == HandoffRow.ticket_id)
            .where(HandoffRow.status == "waiting")
        ).all()
        order = sorted(waiting, key=lambda row: (PRIORITIES.index(row.priority), row.sla_due_at, row.id))
        ids = [row.id for row in order]
        return ids.index(handoff_id) + 1 if handoff_id in ids else 1

    return read(sessions, work)


def wait_estimate(sessions: sessionmaker, position: int, now: datetime) -> int | None:
    """Minutes until an agent picks this customer up, from how long recent customers waited;
    None when there are too few recent pick-ups to say."""

    def work(session: Session) -> list[float]:
        rows = session.execute(
            select(HandoffRow.created_at, HandoffRow.claimed_at)
            .where(HandoffRow.claimed_at.is_not(None))
            .where(HandoffRow.created_at >= now - timedelta(days=WAIT_LOOKBACK_DAYS))
            .order_by(HandoffRow.claimed_at.desc())
            .limit(WAIT_SAMPLE)
        ).all()
        return [(row.claimed_at - row.created_at).total_seconds() for row in rows]

    waits = read(sessions, work)
    if len(waits) < WAIT_MIN_SAMPLES:
        return None
    return max(1, math.ceil(statistics.median(waits) * position / 60))


def customer_said(
    sessions: sessionmaker, conversation_id: str, text: str, now: datetime, frustration: int = 0
) -> HandoffMessage | None:
    """Keep a customer's message for the agent; None when no handoff is live. The ticket
    keeps the customer's worst mood (0-3), so the agent sees it rise during the chat."""

    def work(session: Session) -> HandoffMessage | None:
        row = _live_row(session, conversation_id)
        if row is None:
            return None
        row.last_customer_at = now
        ticket = session.get(TicketRow, row.ticket_id)
        ticket.frustration = max(ticket.frustration, min(3, frustration))
        return _add_message(session, row.id, now, "customer", None, text)

    return write(sessions, work)


def bot_said(sessions: sessionmaker, conversation_id: str, text: str, now: datetime) -> HandoffMessage | None:
    """Keep what the bot told a waiting customer (the queue notice, the reminder)."""

    def work(session: Session) -> HandoffMessage | None:
        row = _live_row(session, conversation_id)
        return _add_message(session, row.id, now, "bot", None, text) if row is not None else None

    return write(sessions, work)


def take_reminder(sessions: sessionmaker, conversation_id: str, now: datetime) -> bool:
    """True once, if the customer is still waiting with nobody on it: the one reminder."""

    def work(session: Session) -> bool:
        changed = session.execute(
            update(HandoffRow)
            .where(HandoffRow.live_key == conversation_id)
            .where(HandoffRow.status == "waiting")
            .where(HandoffRow.reminder_sent_at.is_(None))
            .values(reminder_sent_at=now)
            .execution_options(synchronize_session=False)
        )
        return changed.rowcount == 1

    return write(sessions, work)


def agent_message(sessions: sessionmaker, message_id: int) -> HandoffMessage:
    """An agent's message, as the bot delivers it."""

    def work(session: Session) -> HandoffMessage:
        row = session.get(HandoffMessageRow, message_id)
        if row is None or row.speaker != "agent":
            raise NotLive(f"no agent message {message_id}")
        return _message(row)

    return read(sessions, work)


def undelivered(sessions: sessionmaker, conversation_id: str) -> list[HandoffMessage]:
    """Agents' messages to this conversation not yet handed to its channel, oldest first."""

    def work(session: Session) -> list[HandoffMessage]:
        rows = session.scalars(
            select(HandoffMessageRow)
            .join(HandoffRow, HandoffRow.id == HandoffMessageRow.handoff_id)
            .where(HandoffRow.conversation_id == conversation_id)
            .where(HandoffMessageRow.speaker == "agent", HandoffMessageRow.delivered_at.is_(None))
            .order_by(HandoffMessageRow.id)
        )
        return [_message(row) for row in rows]

    return read(sessions, work)


def delivered(sessions: sessionmaker, message_id: int, now: datetime) -> None:
    def work(session: Session) -> None:
        row = session.get(HandoffMessageRow, message_id)
        row.delivered_at, row.error = now, None

    write(sessions, work)


# -- the agent's side (called by the console) ---------------------------------------


def queue(sessions: sessionmaker, now: datetime) -> list[QueueItem]:
    """Open tickets and live handoffs, the most urgent first, then by deadline."""

    def work(session: Session) -> list[QueueItem]:
        tickets = session.scalars(select(TicketRow).where(TicketRow.status.not_in(CLOSED_STATUSES))).all()
        ids = [t.id for t in tickets]
        latest = _latest_handoffs(session, ids)
        last_messages = _last_messages(session, [h.id for h in latest.values()])
        items = [
            QueueItem(
                view(t),
                _handoff(latest[t.id], t.number) if t.id in latest else None,
                last_messages.get(latest[t.id].id) if t.id in latest else None,
            )
            for t in tickets
        ]
        return sorted(items, key=_queue_order)

    return read(sessions, work)


def handoff_for_ticket(sessions: sessionmaker, number: str) -> Handoff | None:
    """The ticket's latest handoff."""

    def work(session: Session) -> Handoff | None:
        ticket = row_by_number(session, number)
        row = _latest_handoffs(session, [ticket.id]).get(ticket.id)
        return _handoff(row, ticket.number) if row is not None else None

    return read(sessions, work)


def messages(sessions: sessionmaker, number: str, after_id: int = 0) -> list[HandoffMessage]:
    """What was said after the ticket's handoffs began, oldest first, after `after_id`."""

    def work(session: Session) -> list[HandoffMessage]:
        ticket = row_by_number(session, number)
        rows = session.scalars(
            select(HandoffMessageRow)
            .join(HandoffRow, HandoffRow.id == HandoffMessageRow.handoff_id)
            .where(HandoffRow.ticket_id == ticket.id, HandoffMessageRow.id > after_id)
            .order_by(HandoffMessageRow.id)
        )
        return [_message(row) for row in rows]

    return read(sessions, work)


def claim(sessions: sessionmaker, number: str, agent: str, now: datetime) -> Ticket:
    """Give the ticket (and its live conversation) to `agent`. Exactly one of two agents
    claiming at once wins: a customer waiting on the line goes to whoever takes the
    waiting handoff first (even on a ticket someone else held before: the customer asked
    for a person again); a ticket without one, only while nobody holds it."""

    def work(session: Session) -> Ticket:
        ticket = row_by_number(session, number)
        if ticket.status in CLOSED_STATUSES:
            raise AlreadyClaimed(ticket.number, ticket.assigned_agent)
        took_call = session.execute(
            update(HandoffRow)
            .where(HandoffRow.ticket_id == ticket.id, HandoffRow.status == "waiting")
            .values(status="active", claimed_by=agent, claimed_at=now)
            .execution_options(synchronize_session=False)
        )
        holder = or_(TicketRow.assigned_agent.is_(None), TicketRow.assigned_agent == agent)
        taken = session.execute(
            update(TicketRow)
            .where(TicketRow.id == ticket.id)
            .where(true() if took_call.rowcount else holder)
            .values(
                assigned_agent=agent,
                status=case((TicketRow.status == "new", "assigned"), else_=TicketRow.status),
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:
            holder_now = session.scalar(select(TicketRow.assigned_agent).where(TicketRow.id == ticket.id))
            raise AlreadyClaimed(ticket.number, holder_now)
        session.refresh(ticket)
        record_event(session, ticket, f"agent:{agent}", now, "claimed", {"agent": agent})
        return view(ticket)

    return write(sessions, work)


def add_agent_message(
    sessions: sessionmaker, number: str, agent: str, text: str, now: datetime, *, override: bool = False
) -> HandoffMessage:
    """An agent's reply, kept before it is sent; only the claiming agent (or a supervisor,
    with `override`) answers in a live conversation."""

    def work(session: Session) -> HandoffMessage:
        ticket = row_by_number(session, number)
        row = session.scalars(
            select(HandoffRow).where(HandoffRow.ticket_id == ticket.id, HandoffRow.status.in_(LIVE))
        ).first()
        if row is None:
            raise NotLive(f"ticket {ticket.number} has no live conversation")
        if row.claimed_by != agent and not override:
            raise NotYours(f"ticket {ticket.number} is held by {row.claimed_by or 'nobody'}")
        actor = f"agent:{agent}"
        if ticket.status == "assigned":
            ticket.status = "in_progress"
            record_event(session, ticket, actor, now, "status_changed", {"from": "assigned", "to": "in_progress"})
        message = _add_message(session, row.id, now, "agent", agent, text)
        record_event(session, ticket, actor, now, "agent_reply", {"message": message.id, "chars": len(text)})
        return message

    return write(sessions, work)


def message_failed(sessions: sessionmaker, message_id: int, error: str) -> None:
    def work(session: Session) -> None:
        row = session.get(HandoffMessageRow, message_id)
        row.error, row.delivered_at = error, None  # sent again with the next reply

    write(sessions, work)


def end(sessions: sessionmaker, number: str, agent: str, now: datetime, reason: str) -> Handoff | None:
    """The live conversation ends (`handed_back` to the bot, or `resolved`); None if none was live."""

    def work(session: Session) -> Handoff | None:
        ticket = row_by_number(session, number)
        row = session.scalars(
            select(HandoffRow).where(HandoffRow.ticket_id == ticket.id, HandoffRow.status.in_(LIVE))
        ).first()
        if row is None:
            return None
        row.status, row.live_key = "ended", None
        row.ended_at, row.ended_by, row.end_reason = now, agent, reason
        record_event(session, ticket, f"agent:{agent}", now, f"handoff_{reason}", {"handoff": row.id})
        return _handoff(row, ticket.number)

    return write(sessions, work)


def resolve(sessions: sessionmaker, number: str, agent: str, resolution: str, now: datetime) -> Ticket:
    """Resolve the ticket with the text the customer receives; the return visit falls due.
    The live conversation ends first: should resolving then fail, the customer is back with
    the bot and the agent can resolve again, rather than talking to nobody."""
    end(sessions, number, agent, now, "resolved")
    return change_status(sessions, number, "resolved", f"agent:{agent}", now, note=resolution)


def record_pii_view(sessions: sessionmaker, number: str, agent: str, now: datetime, what: str) -> None:
    """An agent pressed "显示" on the customer's personal data: the history says who saw what."""

    def work(session: Session) -> None:
        record_event(session, row_by_number(session, number), f"agent:{agent}", now, "pii_shown", {"what": what})

    write(sessions, work)


def return_visits(sessions: sessionmaker, now: datetime) -> list[Ticket]:
    """Resolved tickets whose return visit (回访) is still to do, the soonest due first."""

    def work(session: Session) -> list[Ticket]:
        rows = session.scalars(
            select(TicketRow)
            .where(TicketRow.status == "resolved")
            .where(TicketRow.return_visit_due_at.is_not(None))
            .where(TicketRow.return_visit_result.is_(None))
            .order_by(TicketRow.return_visit_due_at, TicketRow.id)
        )
        return [view(row) for row in rows]

    return read(sessions, work)


def close_return_visit(
    sessions: sessionmaker, number: str, agent: str, now: datetime, *, satisfied: bool, notes: str
) -> Ticket:
    """The return visit's verdict: a satisfied customer closes the ticket, an unsatisfied
    one reopens it."""
    verdict = "满意" if satisfied else "不满意"
    result = f"{verdict}：{notes.strip()}" if notes.strip() else verdict
    actor = f"agent:{agent}"
    ticket = read(sessions, lambda session: view(row_by_number(session, number)))
    if ticket.status != "resolved" or ticket.return_visit_result is not None:
        raise IllegalTransition(f"ticket {ticket.number} is not awaiting a return visit ({ticket.status})")
    # the move first: it refuses a ticket no longer awaiting its visit before anything is recorded
    change_status(sessions, number, "closed" if satisfied else "in_progress", actor, now, note=result)
    return record_return_visit(sessions, number, actor, now, result=result)


def record_conversation(sessions: sessionmaker, conversation_id: str, channel: str, now: datetime) -> None:
    """Count a conversation once, when it starts (containment)."""

    def work(session: Session) -> None:
        if session.get(ConversationRow, conversation_id) is None:
            session.add(ConversationRow(conversation_id=conversation_id, channel=channel, started_at=now))

    with contextlib.suppress(IntegrityError):  # counted by a concurrent turn of the same conversation
        write(sessions, work, integrity_errors=True)


# -- rows to views ------------------------------------------------------------------


def _live_row(session: Session, conversation_id: str) -> HandoffRow | None:
    return session.scalars(select(HandoffRow).where(HandoffRow.live_key == conversation_id)).first()


def _live(session: Session, conversation_id: str) -> Handoff | None:
    row = _live_row(session, conversation_id)
    if row is None:
        return None
    return _handoff(row, session.scalar(select(TicketRow.number).where(TicketRow.id == row.ticket_id)))


def _latest_handoffs(session: Session, ticket_ids: Iterable[int]) -> dict[int, HandoffRow]:
    ids = list(ticket_ids)
    if not ids:
        return {}
    newest = (
        select(func.max(HandoffRow.id)).where(HandoffRow.ticket_id.in_(ids)).group_by(HandoffRow.ticket_id)
    ).scalar_subquery()
    return {row.ticket_id: row for row in session.scalars(select(HandoffRow).where(HandoffRow.id.in_(newest)))}


def _last_messages(session: Session, handoff_ids: list[int]) -> dict[int, HandoffMessage]:
    if not handoff_ids:
        return {}
    newest = (
        select(func.max(HandoffMessageRow.id))
        .where(HandoffMessageRow.handoff_id.in_(handoff_ids))
        .group_by(HandoffMessageRow.handoff_id)
    ).scalar_subquery()
    rows = session.scalars(select(HandoffMessageRow).where(HandoffMessageRow.id.in_(newest)))
    return {row.handoff_id: _message(row) for row in rows}


def _queue_order(item: QueueItem) -> tuple:
    return (PRIORITIES.index(item.ticket.priority), item.ticket.sla_due_at, item.ticket.id)


def _add_message(
    session: Session, handoff_id: int, now: datetime, speaker: str, author: str | None, text: str
) -> HandoffMessage:
    row = HandoffMessageRow(handoff_id=handoff_id, at=now, speaker=speaker, author=author, text=text)
    session.add(row)
    session.flush()
    return _message(row)


def _handoff(row: HandoffRow, number: str) -> Handoff:
    return Handoff(
        id=row.id,
        conversation_id=row.conversation_id,
        ticket_number=number,
        channel=row.channel,
        status=row.status,
        reason=row.reason,
        created_at=row.created_at,
        claimed_by=row.claimed_by,
        claimed_at=row.claimed_at,
        reminder_sent_at=row.reminder_sent_at,
        ended_at=row.ended_at,
        ended_by=row.ended_by,
        end_reason=row.end_reason,
        last_customer_at=row.last_customer_at,
    )


def _message(row: HandoffMessageRow) -> HandoffMessage:
    return HandoffMessage(
        row.id, row.handoff_id, row.at, row.speaker, row.author, row.text, row.delivered_at, row.error
    )
