"""The ticket service (工单): file a ticket once per complaint, find it again, and (from
bot/tickets/workflow.py, re-exported here) move it through its statuses.

Every function takes the `sessions` factory first (`bot.db.session_factory(url)`) and the
time as a naive local datetime (`bot.clock.now()`); every one returns plain values.
First-contact responsibility (首问负责制): a customer always leaves with a ticket number,
so filing is idempotent and never hands out a number twice.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.config import load_settings
from bot.db import session_factory
from bot.masking import mask_text
from bot.tickets import outbox
from bot.tickets.drafts import checked
from bot.tickets.errors import (
    EventHistoryIsAppendOnly,
    IllegalTransition,
    InvalidDraft,
    TicketNotFound,
    TicketStoreUnavailable,
)
from bot.tickets.models import TicketEventRow, TicketRow, TranscriptLineRow
from bot.tickets.numbers import format_number, next_sequence, normalize_number
from bot.tickets.priority import REPEAT_WINDOW_DAYS, assess, sla_due
from bot.tickets.records import (
    CLOSED_STATUSES,
    Draft,
    Filed,
    Ticket,
    TicketEventView,
    TranscriptLine,
    open_key,
)
from bot.tickets.store import read, to_json, view, write
from bot.tickets.workflow import (
    add_note,
    assign,
    change_status,
    record_return_visit,
    record_satisfaction,
    set_callback_phone,
    ticket_events,
    ticket_transcript,
    update_ticket,
)

__all__ = [
    "Draft",
    "EventHistoryIsAppendOnly",
    "Filed",
    "IllegalTransition",
    "InvalidDraft",
    "Ticket",
    "TicketEventView",
    "TicketNotFound",
    "TicketStoreUnavailable",
    "TranscriptLine",
    "add_note",
    "assign",
    "change_status",
    "conversation_tickets",
    "file_ticket",
    "find_ticket",
    "open_key",
    "open_tickets",
    "recent_complaint",
    "record_return_visit",
    "record_satisfaction",
    "set_callback_phone",
    "short",
    "ticket_events",
    "ticket_for_customer",
    "ticket_transcript",
    "tickets_db",
    "update_ticket",
]

log = logging.getLogger(__name__)


class _AlreadyFiled(Exception):
    """Rolls the filing back: the same complaint is open already."""

    def __init__(self, ticket: Ticket) -> None:
        super().__init__(ticket.number)
        self.ticket = ticket


def file_ticket(sessions: sessionmaker, draft: Draft, now: datetime) -> Filed:
    """File the draft, or return the open ticket this conversation already has for it."""
    draft = checked(draft)
    key = open_key(draft.conversation_id, draft.subject, draft.category)
    # write() tries again after a lost connection; when the commit went through and only its
    # answer was lost, the next try finds the ticket this call filed (its filing id is on
    # the "filed" event): that ticket is new to the customer
    filing_id = uuid.uuid4().hex
    try:
        return write(sessions, lambda session: _file(session, draft, key, now, filing_id), integrity_errors=True)
    except _AlreadyFiled as already:
        return Filed(already.ticket, created=False)
    except IntegrityError as error:
        # two filers of the same matter at once on different days' sequences: one wins
        existing = read(sessions, lambda session: _open_by_key(session, key))
        if existing is None:
            raise TicketStoreUnavailable("ticket store refused the ticket") from error
        log.info("ticket %s was filed by a concurrent filer of the same matter", existing.number)
        return Filed(existing, created=False)


def _file(session: Session, draft: Draft, key: str, now: datetime, filing_id: str) -> Filed:
    existing = _open_by_key(session, key)
    if existing is not None:
        if _filed_by(session, existing, filing_id):
            return Filed(existing, created=True)
        raise _AlreadyFiled(existing)
    sequence = next_sequence(session, now.date())  # from here on, filers of the day wait for us
    existing = _open_by_key(session, key)
    if existing is not None:
        raise _AlreadyFiled(existing)

    repeated = draft.account_number is not None and _has_recent(
        session, TicketRow.account_number == draft.account_number, draft.category, now, REPEAT_WINDOW_DAYS
    )
    priority, reasons = assess(draft.subject, draft.description, draft.frustration, repeated, draft.key_account)
    row = TicketRow(
        number=format_number(now.date(), sequence),
        request_type=draft.request_type,
        subject=draft.subject,
        category=draft.category,
        priority=priority,
        status="new",
        channel=draft.channel,
        conversation_id=draft.conversation_id,
        account_number=draft.account_number,
        callback_phone=draft.callback_phone,
        place=draft.place,
        preferred_time=draft.preferred_time,
        description=draft.description,
        frustration=max(0, min(3, draft.frustration)),
        facts=to_json(dict(draft.facts)),
        sla_due_at=sla_due(priority, now),
        created_at=now,
        updated_at=now,
        open_key=key,
    )
    session.add(row)
    session.flush()
    transcript = [TranscriptLine(line.speaker, mask_text(line.text), line.at) for line in draft.transcript]
    session.add_all(
        TranscriptLineRow(ticket_id=row.id, position=i, speaker=line.speaker, text=line.text, at=line.at)
        for i, line in enumerate(transcript)
    )
    detail = {"priority": priority, "reasons": reasons, "sla_due_at": row.sla_due_at.isoformat(), "filing": filing_id}
    session.add(TicketEventRow(ticket_id=row.id, at=now, actor="bot", kind="filed", detail=to_json(detail)))
    if draft.escalation:
        escalated = to_json({"reason": draft.escalation})
        session.add(TicketEventRow(ticket_id=row.id, at=now, actor="bot", kind="escalated", detail=escalated))
    ticket = view(row)
    helpdesk = load_settings().helpdesk_url
    if helpdesk:
        outbox.enqueue(session, ticket, transcript, now)
    session.flush()
    return Filed(ticket, created=True)


def _filed_by(session: Session, ticket: Ticket, filing_id: str) -> bool:
    """Whether this filing call wrote the ticket (in an earlier try whose answer was lost)."""
    query = select(TicketEventRow.detail).where(TicketEventRow.ticket_id == ticket.id, TicketEventRow.kind == "filed")
    detail = session.scalar(query)
    return detail is not None and json.loads(detail).get("filing") == filing_id


def _open_by_key(session: Session, key: str) -> Ticket | None:
    row = session.scalars(select(TicketRow).where(TicketRow.open_key == key)).first()
    return None if row is None else view(row)


def _has_recent(session: Session, whose, category: str, now: datetime, days: int) -> bool:
    query = (
        select(TicketRow.id)
        .where(whose, TicketRow.category == category)
        .where(TicketRow.created_at > now - timedelta(days=days), TicketRow.created_at <= now)
        .limit(1)
    )
    return session.scalar(query) is not None


def find_ticket(sessions: sessionmaker, number: str | None) -> Ticket | None:
    """The ticket with that number (any case, spaces allowed), or None."""
    try:
        return read(sessions, lambda session: _view_by_number(session, number))
    except TicketNotFound:
        return None


def _view_by_number(session: Session, number: str | None) -> Ticket:
    normalized = normalize_number(number)
    row = session.scalars(select(TicketRow).where(TicketRow.number == normalized)).first() if normalized else None
    if row is None:
        raise TicketNotFound(f"no ticket numbered {number!r}")
    return view(row)


def ticket_for_customer(
    sessions: sessionmaker, number: str | None, conversation_id: str, verified_account: str | None
) -> Ticket | None:
    """The ticket if this customer may see it: filed in this conversation, or on the account
    they proved they hold. None otherwise, exactly as for an unknown number."""
    ticket = find_ticket(sessions, number)
    if ticket is None:
        return None
    if ticket.conversation_id == conversation_id:
        return ticket
    if verified_account is not None and ticket.account_number == verified_account:
        return ticket
    return None


def open_tickets(sessions: sessionmaker, account_number: str) -> list[Ticket]:
    """The account's tickets not yet resolved, newest first."""
    return _tickets(sessions, TicketRow.account_number == account_number, open_only=True)


def conversation_tickets(sessions: sessionmaker, conversation_id: str, open_only: bool = True) -> list[Ticket]:
    """The tickets filed in a conversation, newest first."""
    return _tickets(sessions, TicketRow.conversation_id == conversation_id, open_only=open_only)


def _tickets(sessions: sessionmaker, whose, open_only: bool) -> list[Ticket]:
    query = select(TicketRow).where(whose).order_by(TicketRow.created_at.desc(), TicketRow.id.desc())
    if open_only:
        query = query.where(TicketRow.status.not_in(CLOSED_STATUSES))
    return read(sessions, lambda session: [view(row) for row in session.scalars(query)])


def recent_complaint(
    sessions: sessionmaker,
    account_number: str | None,
    category: str,
    now: datetime,
    days: int = REPEAT_WINDOW_DAYS,
    conversation_id: str | None = None,
) -> bool:
    """Whether the account (or, with no account, the conversation) already has a ticket of
    this category from the last `days` days: "I complained about this already"."""
    if account_number is not None:
        whose = TicketRow.account_number == account_number
    elif conversation_id is not None:
        whose = TicketRow.conversation_id == conversation_id
    else:
        return False
    return read(sessions, lambda session: _has_recent(session, whose, category, now, days))


def short(text: str | None, limit: int = 60) -> str:
    """The text on one line, cut to `limit` characters with "…" (the ticket keeps it whole)."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: max(0, limit - 1)] + "…"


def tickets_db() -> sessionmaker:
    """Sessions on the configured DATABASE_URL."""
    return _sessions_for(load_settings().database_url)


@lru_cache(maxsize=8)
def _sessions_for(url: str) -> sessionmaker:
    return session_factory(url)


