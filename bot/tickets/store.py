"""Sessions for the ticket service: one transaction per operation, database failures
turned into TicketStoreUnavailable, and ORM rows turned into views before they leave."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bot.tickets.errors import TicketNotFound, TicketStoreUnavailable
from bot.tickets.models import TicketRow
from bot.tickets.numbers import normalize_number
from bot.tickets.records import Ticket

log = logging.getLogger(__name__)
T = TypeVar("T")

# A locked SQLite database has already waited out the engine's 15 s busy timeout, so one
# more try is enough; PostgreSQL's deadlock (40P01) and serialisation (40001) failures
# are meant to be retried.
ATTEMPTS = 2
_RETRY_PGCODES = {"40001", "40P01"}


def _transient(error: OperationalError) -> bool:
    if getattr(error.orig, "pgcode", None) in _RETRY_PGCODES:
        return True
    return "database is locked" in str(error.orig) or "database table is locked" in str(error.orig)


def write(sessions: sessionmaker, work: Callable[[Session], T], *, integrity_errors: bool = False) -> T:
    """Run `work` in one transaction and commit. With `integrity_errors`, an IntegrityError
    reaches the caller (who knows which constraint can race); otherwise it is a store failure."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with sessions.begin() as session:
                return work(session)
        except IntegrityError as error:
            if integrity_errors:
                raise
            raise TicketStoreUnavailable(f"ticket store refused the change: {type(error.orig).__name__}") from error
        except OperationalError as error:
            if attempt < ATTEMPTS and _transient(error):
                log.warning("ticket store busy (%s), trying again", type(error.orig).__name__)
                time.sleep(0.2 * attempt)
                continue
            raise TicketStoreUnavailable(f"ticket store unavailable: {type(error.orig).__name__}") from error
        except SQLAlchemyError as error:
            raise TicketStoreUnavailable(f"ticket store unavailable: {type(error).__name__}") from error
    raise AssertionError("unreachable")


def read(sessions: sessionmaker, work: Callable[[Session], T]) -> T:
    """Run read-only `work` in a session."""
    try:
        with sessions() as session:
            return work(session)
    except SQLAlchemyError as error:
        raise TicketStoreUnavailable(f"ticket store unavailable: {type(error).__name__}") from error


def row_by_number(session: Session, number: str | None, *, lock: bool = False) -> TicketRow:
    """The ticket row, or TicketNotFound. `lock` holds the row (PostgreSQL) until commit."""
    normalized = normalize_number(number)
    query = select(TicketRow).where(TicketRow.number == normalized)
    row = session.scalars(query.with_for_update() if lock else query).first() if normalized else None
    if row is None:
        raise TicketNotFound(f"no ticket numbered {number!r}")
    return row


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def view(row: TicketRow) -> Ticket:
    """The plain view of a row (call inside the session)."""
    return Ticket(
        id=row.id,
        number=row.number,
        request_type=row.request_type,
        subject=row.subject,
        category=row.category,
        priority=row.priority,
        status=row.status,
        channel=row.channel,
        conversation_id=row.conversation_id,
        account_number=row.account_number,
        callback_phone=row.callback_phone,
        place=row.place,
        preferred_time=row.preferred_time,
        description=row.description,
        frustration=row.frustration,
        facts=dict(json.loads(row.facts or "{}")),
        sla_due_at=row.sla_due_at,
        assigned_agent=row.assigned_agent,
        substantiated=row.substantiated,
        return_visit_result=row.return_visit_result,
        satisfaction=row.satisfaction,
        satisfaction_comment=row.satisfaction_comment,
        resolution=row.resolution,
        resolved_at=row.resolved_at,
        return_visit_due_at=row.return_visit_due_at,
        unit=row.unit,
        created_at=row.created_at,
        updated_at=row.updated_at,
        open_key=row.open_key,
    )
