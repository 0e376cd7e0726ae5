"""Ticket numbers (contract): ``GD`` + date ``YYYYMMDD`` + 4-digit daily sequence, e.g.
GD202611240007. The sequence is a row per day in `ticket_sequences`, taken inside the
filing transaction, so concurrent filers wait for each other on that row and never
share a number; a rolled-back filing gives its number back."""

from __future__ import annotations

import re
import unicodedata
from datetime import date

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.tickets.models import TicketSequence

PREFIX = "GD"
# past 9,999 tickets a day the sequence grows a digit rather than fail a filing
_NUMBER = re.compile(r"GD\d{12,13}")
_SPACES = re.compile(r"[\s\-_]+")
_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def format_number(day: date, sequence: int) -> str:
    return f"{PREFIX}{day:%Y%m%d}{sequence:04d}"


def normalize_number(text: str | None) -> str | None:
    """The number as stored (upper case, no spaces, half-width), or None if it is not one."""
    if not text:
        return None
    number = _SPACES.sub("", unicodedata.normalize("NFKC", text)).upper()
    return number if _NUMBER.fullmatch(number) else None


def next_sequence(session: Session, day: date) -> int:
    """The day's next sequence number, inside the caller's transaction.

    Insert-if-missing, then increment, then read: the increment takes the row's write
    lock (PostgreSQL) or the database's (SQLite) until the caller commits or rolls back.
    """
    dialect = session.get_bind().dialect.name
    if dialect not in _INSERTS:
        raise NotImplementedError(f"ticket numbers need SQLite or PostgreSQL, not {dialect}")
    session.execute(
        _INSERTS[dialect](TicketSequence).values(day=day, last=0).on_conflict_do_nothing(index_elements=["day"])
    )
    session.execute(update(TicketSequence).where(TicketSequence.day == day).values(last=TicketSequence.last + 1))
    return session.scalar(select(TicketSequence.last).where(TicketSequence.day == day))
