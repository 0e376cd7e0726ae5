"""Tables of the ticket service (工单). The rows stay inside bot/tickets; callers get the
plain views of bot/tickets/records.py."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    event,
)
from sqlalchemy.orm import Session

from bot.db import Base
from bot.tickets.errors import EventHistoryIsAppendOnly


class TicketRow(Base):
    __tablename__ = "tickets"
    __table_args__ = (Index("ix_tickets_account_category_created", "account_number", "category", "created_at"),)

    id = Column(Integer, primary_key=True)
    number = Column(String(16), nullable=False, unique=True)  # GD + YYYYMMDD + 4-digit daily sequence
    request_type = Column(String(32), nullable=False)  # complaint | fault_repair | service_request | enquiry
    subject = Column(String(64), nullable=False)  # the journey that filed it: hazard, fault, bill_too_high, ...
    category = Column(String(32), nullable=False)  # one of the twelve (categories.py)
    priority = Column(String(16), nullable=False)  # urgent | high | normal
    status = Column(String(16), nullable=False, index=True)
    channel = Column(String(32), nullable=False)
    conversation_id = Column(String(255), nullable=False, index=True)
    account_number = Column(String(10))
    callback_phone = Column(String(20))
    place = Column(Text)
    preferred_time = Column(Text)
    description = Column(Text, nullable=False)  # whole, however long
    frustration = Column(Integer, nullable=False)  # 0..3
    facts = Column(Text, nullable=False)  # JSON object of str -> str
    sla_due_at = Column(DateTime, nullable=False)
    assigned_agent = Column(String(64))
    substantiated = Column(Boolean)  # 属实
    return_visit_result = Column(Text)  # 回访
    satisfaction = Column(Integer)  # 1..5
    satisfaction_comment = Column(Text)
    resolution = Column(Text)
    resolved_at = Column(DateTime)
    return_visit_due_at = Column(DateTime, index=True)  # 回访: within 14 days of resolution
    unit = Column(String(128))  # the staff member or unit the complaint names (hot spots)
    created_at = Column(DateTime, nullable=False)
    updated_at = Column(DateTime, nullable=False)
    # conversation|subject|category while the ticket is open; NULL once resolved or closed
    open_key = Column(String(400), unique=True)


class TicketEventRow(Base):
    """One entry of a ticket's history. Append-only: see the listeners below."""

    __tablename__ = "ticket_events"

    id = Column(Integer, primary_key=True)
    ticket_id = Column(Integer, ForeignKey("tickets.id"), nullable=False, index=True)
    at = Column(DateTime, nullable=False)
    actor = Column(String(64), nullable=False)  # bot | customer | agent:wang | system
    kind = Column(String(32), nullable=False)  # filed | escalated | assigned | status_changed | note | ...
    detail = Column(Text, nullable=False)  # JSON object


class TranscriptLineRow(Base):
    """The conversation up to filing, one row a line, masked before it is stored."""

    __tablename__ = "ticket_transcripts"

    id = Column(Integer, primary_key=True)
    ticket_id = Column(Integer, ForeignKey("tickets.id"), nullable=False, index=True)
    position = Column(Integer, nullable=False)
    speaker = Column(String(16), nullable=False)  # customer | bot | agent
    text = Column(Text, nullable=False)
    at = Column(DateTime)


class TicketSequence(Base):
    """The last ticket number handed out on a day; filers serialise on the day's row."""

    __tablename__ = "ticket_sequences"

    day = Column(Date, primary_key=True)
    last = Column(Integer, nullable=False)


class OutboxMessage(Base):
    """A message to the company's work-order system, written with the ticket, sent later."""

    __tablename__ = "outbox"

    id = Column(Integer, primary_key=True)
    ticket_id = Column(Integer, ForeignKey("tickets.id"), nullable=False, index=True)
    kind = Column(String(32), nullable=False)
    payload = Column(Text, nullable=False)  # JSON
    idempotency_key = Column(String(64), nullable=False, unique=True)
    attempts = Column(Integer, nullable=False)
    next_attempt_at = Column(DateTime, nullable=False, index=True)
    delivered_at = Column(DateTime)
    last_error = Column(Text)
    created_at = Column(DateTime, nullable=False)


@event.listens_for(TicketEventRow, "before_update")
def _refuse_update(_mapper, _connection, target: TicketEventRow) -> None:
    raise EventHistoryIsAppendOnly(f"ticket event {target.id} cannot be changed")


@event.listens_for(TicketEventRow, "before_delete")
def _refuse_delete(_mapper, _connection, target: TicketEventRow) -> None:
    raise EventHistoryIsAppendOnly(f"ticket event {target.id} cannot be deleted")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_change(state) -> None:
    """`update(TicketEventRow)` / `delete(TicketEventRow)` statements bypass the mapper events."""
    mapper = state.bind_mapper
    if (state.is_update or state.is_delete) and mapper is not None and mapper.class_ is TicketEventRow:
        raise EventHistoryIsAppendOnly("ticket events cannot be changed or deleted")
