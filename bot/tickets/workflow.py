"""A ticket's life after filing: statuses, assignment, notes, the callback phone, the
return visit (回访), and reading back its history and transcript.

Closed loop (domain.md): accept (new) → assign (assigned) → handle (in_progress) →
answer the customer (resolved) → return visit → archive (closed). A return visit that
finds the customer unsatisfied reopens a resolved ticket; closed is final.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.accounts import PHONE_NUMBER, digits_of
from bot.masking import mask_phone
from bot.text import normalize
from bot.tickets.categories import CATEGORIES, STATUSES
from bot.tickets.errors import IllegalTransition, InvalidDraft
from bot.tickets.models import TicketEventRow, TicketRow, TranscriptLineRow
from bot.tickets.priority import PRIORITIES, sla_due
from bot.tickets.records import CLOSED_STATUSES, Ticket, TicketEventView, TranscriptLine, open_key
from bot.tickets.store import read, row_by_number, to_json, view, write

TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"assigned", "in_progress", "resolved"}),
    "assigned": frozenset({"new", "in_progress", "resolved"}),
    "in_progress": frozenset({"assigned", "resolved"}),
    "resolved": frozenset({"closed", "in_progress"}),  # reopened after an unsatisfied return visit
    "closed": frozenset(),
}
RETURN_VISIT_DAYS = 14  # 回访 within 14 days of resolution (domain.md)
_LANDLINE = re.compile(r"0\d{2,3}-?\d{7,8}")


def change_status(
    sessions: sessionmaker, number: str, new_status: str, actor: str, now: datetime, note: str | None = None
) -> Ticket:
    """Move the ticket; a note given when resolving is kept as the resolution."""

    def work(session: Session) -> Ticket:
        row = row_by_number(session, number, lock=True)
        old = row.status
        _check_move(row.number, old, new_status)
        row.status = new_status
        if new_status == "new":
            row.assigned_agent = None  # back in the queue
        if new_status == "resolved":
            row.resolution = note or row.resolution
            row.resolved_at = now
            row.return_visit_due_at = now + timedelta(days=RETURN_VISIT_DAYS)
            # a new resolution needs a new return visit; an earlier verdict stays in the history
            row.return_visit_result = None
        elif old == "resolved" and new_status != "closed":
            row.resolved_at = row.return_visit_due_at = None  # reopened: a new resolution comes
        if new_status in CLOSED_STATUSES:
            row.open_key = None  # the same matter raised again is a new ticket
        elif old in CLOSED_STATUSES:
            _reopen_key(session, row)
        detail: dict[str, Any] = {"from": old, "to": new_status}
        if note:
            detail["note"] = note
        return record_event(session, row, actor, now, "status_changed", detail)

    return write(sessions, work)


def assign(sessions: sessionmaker, number: str, agent: str, actor: str, now: datetime) -> Ticket:
    """Give the ticket to a named agent (or to another one): it becomes `assigned`."""

    def work(session: Session) -> Ticket:
        row = row_by_number(session, number, lock=True)
        old_status, old_agent = row.status, row.assigned_agent
        if old_status != "assigned":
            _check_move(row.number, old_status, "assigned")
        row.status, row.assigned_agent = "assigned", agent
        detail = {"agent": agent, "from_agent": old_agent, "from": old_status}
        return record_event(session, row, actor, now, "assigned", detail)

    return write(sessions, work)


def update_ticket(
    sessions: sessionmaker,
    number: str,
    actor: str,
    now: datetime,
    *,
    category: str | None = None,
    priority: str | None = None,
    substantiated: bool | None = None,
    unit: str | None = None,
) -> Ticket:
    """An agent's corrections: category, priority (the deadline follows it), 属实, the unit
    the complaint names. Fields left None stay as they are; each change is in the history."""
    if category is not None and category not in CATEGORIES:
        raise InvalidDraft(f"{category!r} is not a complaint category")
    if priority is not None and priority not in PRIORITIES:
        raise InvalidDraft(f"{priority!r} is not a priority (one of {', '.join(PRIORITIES)})")
    unit = unit.strip() or None if unit is not None else None
    wanted = {"category": category, "priority": priority, "substantiated": substantiated, "unit": unit}
    wanted = {name: value for name, value in wanted.items() if value is not None}

    def work(session: Session) -> Ticket:
        row = row_by_number(session, number, lock=True)
        changes = {name: {"from": getattr(row, name), "to": value} for name, value in wanted.items()}
        changes = {name: change for name, change in changes.items() if change["from"] != change["to"]}
        if not changes:
            return view(row)
        for name, change in changes.items():
            setattr(row, name, change["to"])
        if "priority" in changes:
            row.sla_due_at = sla_due(row.priority, row.created_at)
            changes["sla_due_at"] = {"to": row.sla_due_at.isoformat()}
        return record_event(session, row, actor, now, "updated", changes)

    return write(sessions, work)


def add_note(sessions: sessionmaker, number: str, actor: str, text: str, now: datetime) -> Ticket:
    """A remark in the ticket's history (the ticket itself does not change)."""
    return write(
        sessions,
        lambda session: record_event(session, row_by_number(session, number), actor, now, "note", {"text": text}),
    )


def set_callback_phone(sessions: sessionmaker, number: str, phone: str, actor: str, now: datetime) -> Ticket:
    """The number to call the customer back on: a mainland mobile or a landline with area code."""
    typed = normalize(phone)
    if PHONE_NUMBER.fullmatch(typed):
        phone = digits_of(typed)[-11:]
    elif _LANDLINE.fullmatch(typed):
        phone = typed
    else:
        raise InvalidDraft("callback phone must be a mobile number or a landline with area code")

    def work(session: Session) -> Ticket:
        row = row_by_number(session, number)
        old = row.callback_phone
        row.callback_phone = phone
        detail = {"from": mask_phone(old) if old else None, "to": mask_phone(phone)}
        return record_event(session, row, actor, now, "callback_phone_changed", detail)

    return write(sessions, work)


def record_return_visit(
    sessions: sessionmaker,
    number: str,
    actor: str,
    now: datetime,
    *,
    result: str | None = None,
    substantiated: bool | None = None,
    satisfaction: int | None = None,
    comment: str | None = None,
) -> Ticket:
    """What the return visit (回访) found: the customer's verdict, whether the complaint was
    substantiated (属实), and the satisfaction score 1 to 5. Fields left None stay as they are."""
    if satisfaction is not None and not 1 <= satisfaction <= 5:
        raise InvalidDraft("satisfaction must be 1 to 5")
    changes = {
        "return_visit_result": result,
        "substantiated": substantiated,
        "satisfaction": satisfaction,
        "satisfaction_comment": comment,
    }
    changes = {name: value for name, value in changes.items() if value is not None}

    def work(session: Session) -> Ticket:
        row = row_by_number(session, number, lock=True)
        for name, value in changes.items():
            setattr(row, name, value)
        return record_event(session, row, actor, now, "return_visit", changes)

    return write(sessions, work)


def record_satisfaction(
    sessions: sessionmaker, number: str, score: int, comment: str | None, now: datetime
) -> Ticket:
    """The customer's own rating (1 to 5) when the bot asked after the ticket was resolved."""
    if not 1 <= score <= 5:
        raise InvalidDraft("satisfaction must be 1 to 5")

    def work(session: Session) -> Ticket:
        row = row_by_number(session, number, lock=True)
        row.satisfaction, row.satisfaction_comment = score, comment or None
        return record_event(session, row, "customer", now, "satisfaction", {"score": score, "comment": comment})

    return write(sessions, work)


def ticket_events(sessions: sessionmaker, number: str) -> list[TicketEventView]:
    """The ticket's history, oldest first."""

    def work(session: Session) -> list[TicketEventView]:
        row = row_by_number(session, number)
        events = session.scalars(
            select(TicketEventRow).where(TicketEventRow.ticket_id == row.id).order_by(TicketEventRow.id)
        )
        return [TicketEventView(e.at, e.actor, e.kind, json.loads(e.detail)) for e in events]

    return read(sessions, work)


def ticket_transcript(sessions: sessionmaker, number: str) -> list[TranscriptLine]:
    """The conversation up to filing, as stored (masked)."""

    def work(session: Session) -> list[TranscriptLine]:
        row = row_by_number(session, number)
        lines = session.scalars(
            select(TranscriptLineRow).where(TranscriptLineRow.ticket_id == row.id).order_by(TranscriptLineRow.position)
        )
        return [TranscriptLine(line.speaker, line.text, line.at) for line in lines]

    return read(sessions, work)


def _check_move(number: str, old: str, new: str) -> None:
    if new not in STATUSES:
        raise IllegalTransition(f"{new!r} is not a ticket status (one of {', '.join(STATUSES)})")
    if new not in TRANSITIONS.get(old, frozenset()):
        raise IllegalTransition(
            f"ticket {number} cannot move from {old} ({STATUSES.get(old, old)}) "
            f"to {new} ({STATUSES[new]})"
        )


def _reopen_key(session: Session, row: TicketRow) -> None:
    """A reopened ticket takes its key back, unless the same matter was filed anew meanwhile."""
    key = open_key(row.conversation_id, row.subject, row.category)
    if session.scalar(select(TicketRow.id).where(TicketRow.open_key == key)) is None:
        row.open_key = key


def record_event(session: Session, row: TicketRow, actor: str, now: datetime, kind: str, detail: dict) -> Ticket:
    """Append to the ticket's history (inside a write transaction) and touch the ticket."""
    row.updated_at = now
    session.add(TicketEventRow(ticket_id=row.id, at=now, actor=actor, kind=kind, detail=to_json(detail)))
    session.flush()
    return view(row)
