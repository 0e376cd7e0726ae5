"""Sessions for the ticket service: one transaction per operation, database failures
turned into TicketStoreUnavailable, and ORM rows turned into views before they leave."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from itertools import count
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
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
BUSY_ATTEMPTS = 2
_RETRY_PGCODES = {"40001", "40P01"}
# A lost connection (PostgreSQL restarting, shutting down, recovering) is tried again,
# backing off from 0.2 s to 2 s, for this long: a restart takes a few seconds, and the
# customer hears no number until the ticket is written. Trying a filing again is safe:
# its open_key finds the ticket that a commit whose answer was lost did write.
RECONNECT_SECONDS = 15.0
_CONNECTION_LOST = re.compile(
    r"server closed the connection|terminating connection|connection refused|could not connect|"
    r"connection to server .* failed|connection already closed|the database system is "
    r"(starting up|shutting down|in recovery mode|not yet accepting connections)",
    re.IGNORECASE,
)


def _connection_lost(error: DBAPIError) -> bool:
    return error.connection_invalidated or bool(_CONNECTION_LOST.search(str(error.orig)))


def _busy(error: DBAPIError) -> bool:
    if getattr(error.orig, "pgcode", None) in _RETRY_PGCODES:
        return True
    return "database is locked" in str(error.orig) or "database table is locked" in str(error.orig)


def _pause_before_retry(error: DBAPIError, attempt: int, deadline: float) -> float | None:
    """Seconds to wait before trying again, or None when this failure will not pass."""
    if _connection_lost(error):
        pause = min(0.2 * 2 ** (attempt - 1), 2.0)
        return pause if time.monotonic() + pause < deadline else None
    if _busy(error) and attempt < BUSY_ATTEMPTS:
        return 0.2 * attempt
    return None


def write(sessions: sessionmaker, work: Callable[[Session], T], *, integrity_errors: bool = False) -> T:
    """Run `work` in one transaction and commit, trying again while the database is busy or
    reconnecting. With `integrity_errors`, an IntegrityError reaches the caller (who knows
    which constraint can race); otherwise it is a store failure."""
    deadline = time.monotonic() + RECONNECT_SECONDS
    for attempt in count(1):
        try:
            with sessions.begin() as session:
                return work(session)
        except IntegrityError as error:
            if integrity_errors:
                raise
            raise TicketStoreUnavailable(f"ticket store refused the change: {type(error.orig).__name__}") from error
        except DBAPIError as error:
            pause = _pause_before_retry(error, attempt, deadline)
            if pause is None:
                raise TicketStoreUnavailable(f"ticket store unavailable: {type(error.orig).__name__}") from error
            log.warning("ticket store failed (%s), trying again in %.1f s", type(error.orig).__name__, pause)
            time.sleep(pause)
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
