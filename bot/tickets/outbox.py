"""Forwarding tickets to the company's work-order system (the helpdesk) over HTTP.

The transactional outbox: a filed ticket writes its message in the same transaction
(`enqueue`), so a ticket is never lost and never sent before it exists; a worker
(`python -m bot outbox run`) posts what is due. Each message is POSTed as JSON to
HELPDESK_URL with the header ``Idempotency-Key: <number>:filed``; a 2xx answer means
delivered. Anything else is tried again after 2, 4, 8 … seconds (at most 300), with the
same key, so a helpdesk whose answer was lost can recognise the repeat. Delivery is at
least once; the key makes it once in effect.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.tickets.models import OutboxMessage, TicketEventRow, TicketRow
from bot.tickets.records import Ticket, TranscriptLine
from bot.tickets.store import read, row_by_number, to_json, write

log = logging.getLogger(__name__)
MAX_BACKOFF_SECONDS = 300


@dataclass(frozen=True)
class DeliveryReport:
    sent: int
    failed: int


@dataclass(frozen=True)
class OutboxEntry:
    """A message as it stands, for the console and the tests."""

    kind: str
    idempotency_key: str
    payload: dict[str, Any]
    attempts: int
    next_attempt_at: datetime
    delivered_at: datetime | None
    last_error: str | None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def payload(ticket: Ticket, transcript: list[TranscriptLine]) -> dict[str, Any]:
    """What the helpdesk receives for a filed ticket (times are local, ISO 8601 without offset)."""
    return {
        "number": ticket.number,
        "request_type": ticket.request_type,
        "subject": ticket.subject,
        "category": ticket.category,
        "priority": ticket.priority,
        "status": ticket.status,
        "sla_due_at": _iso(ticket.sla_due_at),
        "channel": ticket.channel,
        "conversation_id": ticket.conversation_id,
        "account_number": ticket.account_number,
        "callback_phone": ticket.callback_phone,
        "place": ticket.place,
        "preferred_time": ticket.preferred_time,
        "description": ticket.description,
        "frustration": ticket.frustration,
        "facts": ticket.facts,
        "created_at": _iso(ticket.created_at),
        "transcript": [{"speaker": t.speaker, "text": t.text, "at": _iso(t.at)} for t in transcript],
    }


def enqueue(session: Session, ticket: Ticket, transcript: list[TranscriptLine], now: datetime) -> None:
    """Write the filed ticket's message, inside the filing transaction."""
    session.add(
        OutboxMessage(
            ticket_id=ticket.id,
            kind="filed",
            payload=to_json(payload(ticket, transcript)),
            idempotency_key=f"{ticket.number}:filed",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )


def deliver_due(
    sessions: sessionmaker, url: str, now: datetime, timeout: float = 5.0, limit: int = 50
) -> DeliveryReport:
    """POST every message due at `now` (oldest first, at most `limit`), committing each alone."""
    due = read(
        sessions,
        lambda session: list(
            session.scalars(
                select(OutboxMessage.id)
                .where(OutboxMessage.delivered_at.is_(None), OutboxMessage.next_attempt_at <= now)
                .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
                .limit(limit)
            )
        ),
    )
    sent = failed = 0
    with requests.Session() as http:
        for message_id in due:
            outcome = write(sessions, lambda session, i=message_id: _deliver(session, http, i, url, now, timeout))
            sent += outcome is True
            failed += outcome is False
    return DeliveryReport(sent, failed)


def _deliver(
    session: Session, http: requests.Session, message_id: int, url: str, now: datetime, timeout: float
) -> bool | None:
    """True when delivered, False when it failed, None when another worker has it or had it."""
    # PostgreSQL: a second worker skips the row while this one is posting it; SQLite has no
    # row locks, and two workers may both post: the Idempotency-Key makes that harmless.
    message = session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.delivered_at.is_(None))
        .with_for_update(skip_locked=True)
    ).first()
    if message is None:
        return None
    number = session.scalar(select(TicketRow.number).where(TicketRow.id == message.ticket_id))
    message.attempts += 1
    try:
        response = http.post(
            url,
            data=message.payload.encode("utf-8"),
            headers={"Content-Type": "application/json; charset=utf-8", "Idempotency-Key": message.idempotency_key},
            timeout=timeout,
            allow_redirects=False,
        )
        error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
    except requests.RequestException as failure:
        error = f"{type(failure).__name__}: {failure}"[:500]
    if error is None:
        message.delivered_at, message.last_error = now, None
        detail = to_json({"kind": message.kind, "status": response.status_code, "attempts": message.attempts})
        forwarded = TicketEventRow(ticket_id=message.ticket_id, at=now, actor="system", kind="forwarded", detail=detail)
        session.add(forwarded)
        log.info("ticket %s forwarded to the helpdesk (attempt %d)", number, message.attempts)
        return True
    delay = timedelta(seconds=min(2**message.attempts, MAX_BACKOFF_SECONDS))
    message.last_error, message.next_attempt_at = error, now + delay
    log.warning(
        "ticket %s not forwarded (attempt %d): %s; next try at %s",
        number,
        message.attempts,
        error,
        message.next_attempt_at.isoformat(),
    )
    return False


def outbox_entries(sessions: sessionmaker, number: str) -> list[OutboxEntry]:
    """The ticket's outgoing messages, oldest first (TicketNotFound for an unknown number)."""

    def work(session: Session) -> list[OutboxEntry]:
        row = row_by_number(session, number)
        messages = session.scalars(
            select(OutboxMessage).where(OutboxMessage.ticket_id == row.id).order_by(OutboxMessage.id)
        )
        return [
            OutboxEntry(
                m.kind,
                m.idempotency_key,
                json.loads(m.payload),
                m.attempts,
                m.next_attempt_at,
                m.delivered_at,
                m.last_error,
            )
            for m in messages
        ]

    return read(sessions, work)
