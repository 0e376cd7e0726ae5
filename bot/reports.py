"""The supervisor dashboard's figures, each one SQL query (SQLAlchemy `select()`, the same
on SQLite and PostgreSQL) returning plain rows: named tuples a chart and a CSV file both
read. Periods are whole local days, the default the last 30 including today.

Containment (机器人独立解决率): the share of conversations the bot finished without handing
them to a person (no ticket with subject `handoff` in the same conversation). Fallback rate
(兜底率): the share of the customer's messages the bot answered with its fallback ("please
say it again", then a person) because it did not understand. Hot spots (热点区域): supply
areas (台区) with repeated outages or complaints.

Containment and the fallback rate come from the analytics consumer's daily figures when
ANALYTICS_SOURCE=events (bot/analytics), else containment from the conversations the
action server counts; only Rasa's event stream sees every turn, so without it there is no
fallback rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import NamedTuple

from sqlalchemy import and_, case, exists, func, literal, or_, select, union_all
from sqlalchemy.orm import sessionmaker

from bot import models
from bot.analytics.models import DayFiguresRow
from bot.config import load_settings
from bot.handoff.models import ConversationRow
from bot.tickets.models import TicketRow
from bot.tickets.records import CLOSED_STATUSES

DEFAULT_DAYS = 30
REPEATED = 2  # an area is a hot spot from the second outage or complaint in the period


@dataclass(frozen=True)
class Period:
    start: date  # the first day
    end: date  # the last day, included

    @classmethod
    def last_days(cls, today: date, days: int = DEFAULT_DAYS) -> Period:
        return cls(today - timedelta(days=days - 1), today)

    @property
    def since(self) -> datetime:
        return datetime.combine(self.start, time.min)

    @property
    def until(self) -> datetime:
        """The first moment after the period."""
        return datetime.combine(self.end + timedelta(days=1), time.min)

    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def holds(self, column):
        return and_(column >= self.since, column < self.until)


class DayCount(NamedTuple):
    day: date
    key: str  # a category or a priority
    tickets: int


class SlaDay(NamedTuple):
    day: date  # the day the deadlines fell
    due: int  # tickets whose deadline passed that day
    breached: int  # resolved after it, or still open past it


class ScoreCount(NamedTuple):
    score: int  # 1..5
    tickets: int


class SatisfactionDay(NamedTuple):
    day: date
    average: float
    rated: int


class ContainmentDay(NamedTuple):
    day: date
    conversations: int
    handed_over: int

    @property
    def contained(self) -> float:
        return (self.conversations - self.handed_over) / self.conversations if self.conversations else 0.0


class FallbackDay(NamedTuple):
    day: date
    answered: int  # the customer's messages the bot answered (not those relayed to an agent)
    fallbacks: int  # of them, answered by the fallback

    @property
    def share(self) -> float:
        return self.fallbacks / self.answered if self.answered else 0.0


class HotSpot(NamedTuple):
    area: str
    outages: int
    complaints: int


class UnitComplaints(NamedTuple):
    unit: str
    complaints: int
    substantiated: int  # 属实


def tickets_by_category(sessions: sessionmaker, period: Period) -> list[DayCount]:
    """Tickets filed per day and category."""
    return _per_day(sessions, period, TicketRow.category)


def tickets_by_priority(sessions: sessionmaker, period: Period) -> list[DayCount]:
    """Tickets filed per day and priority."""
    return _per_day(sessions, period, TicketRow.priority)


def _per_day(sessions: sessionmaker, period: Period, key) -> list[DayCount]:
    day = func.date(TicketRow.created_at)
    query = (
        select(day, key, func.count(TicketRow.id))
        .where(period.holds(TicketRow.created_at))
        .group_by(day, key)
        .order_by(day, key)
    )
    return [DayCount(_day(d), k, n) for d, k, n in _rows(sessions, query)]


def sla_breaches(sessions: sessionmaker, period: Period, now: datetime) -> list[SlaDay]:
    """Per day, the tickets whose deadline (`sla_due_at`) fell that day and has passed, and
    how many of them missed it: resolved after it, or not resolved by now."""
    day = func.date(TicketRow.sla_due_at)
    missed = or_(
        TicketRow.resolved_at > TicketRow.sla_due_at,
        and_(TicketRow.resolved_at.is_(None), TicketRow.status.not_in(CLOSED_STATUSES)),
    )
    query = (
        select(day, func.count(TicketRow.id), func.sum(case((missed, 1), else_=0)))
        .where(period.holds(TicketRow.sla_due_at), TicketRow.sla_due_at <= now)
        .group_by(day)
        .order_by(day)
    )
    return [SlaDay(_day(d), due, int(breached or 0)) for d, due, breached in _rows(sessions, query)]


def _rated_on():
    # the score comes at the return visit after resolution; tickets from before
    # resolved_at existed fall back to their last change
    return func.coalesce(TicketRow.resolved_at, TicketRow.updated_at)


def satisfaction_scores(sessions: sessionmaker, period: Period) -> list[ScoreCount]:
    """How many tickets got each score 1 to 5 (every score listed, zero or not)."""
    query = (
        select(TicketRow.satisfaction, func.count(TicketRow.id))
        .where(TicketRow.satisfaction.is_not(None), period.holds(_rated_on()))
        .group_by(TicketRow.satisfaction)
    )
    counts = dict(_rows(sessions, query))
    return [ScoreCount(score, counts.get(score, 0)) for score in range(1, 6)]


def satisfaction_by_day(sessions: sessionmaker, period: Period) -> list[SatisfactionDay]:
    """The average score per day of resolution, with how many tickets were rated."""
    day = func.date(_rated_on())
    query = (
        select(day, func.avg(TicketRow.satisfaction), func.count(TicketRow.id))
        .where(TicketRow.satisfaction.is_not(None), period.holds(_rated_on()))
        .group_by(day)
        .order_by(day)
    )
    return [SatisfactionDay(_day(d), round(float(avg), 2), n) for d, avg, n in _rows(sessions, query)]


def from_events() -> bool:
    """Whether containment and fallbacks come from the analytics consumer (ANALYTICS_SOURCE=events)."""
    return load_settings().analytics_source == "events"


def containment(sessions: sessionmaker, period: Period) -> list[ContainmentDay]:
    """Conversations started per day and how many of them were handed to a person."""
    if from_events():
        query = (
            select(DayFiguresRow.day, DayFiguresRow.conversations, DayFiguresRow.handed_over)
            .where(DayFiguresRow.day.between(period.start, period.end), DayFiguresRow.conversations > 0)
            .order_by(DayFiguresRow.day)
        )
        return [ContainmentDay(_day(d), n, h) for d, n, h in _rows(sessions, query)]
    handed = exists().where(
        TicketRow.conversation_id == ConversationRow.conversation_id, TicketRow.subject == "handoff"
    )
    day = func.date(ConversationRow.started_at)
    query = (
        select(day, func.count(ConversationRow.conversation_id), func.sum(case((handed, 1), else_=0)))
        .where(period.holds(ConversationRow.started_at))
        .group_by(day)
        .order_by(day)
    )
    return [ContainmentDay(_day(d), n, int(h or 0)) for d, n, h in _rows(sessions, query)]


def fallbacks(sessions: sessionmaker, period: Period) -> list[FallbackDay] | None:
    """Per day, the customer's messages the bot answered and how many of them its fallback
    answered; None unless the figures come from the event stream."""
    if not from_events():
        return None
    answered = DayFiguresRow.messages - DayFiguresRow.relayed
    query = (
        select(DayFiguresRow.day, answered, DayFiguresRow.fallbacks)
        .where(DayFiguresRow.day.between(period.start, period.end), answered > 0)
        .order_by(DayFiguresRow.day)
    )
    return [FallbackDay(_day(d), a, f) for d, a, f in _rows(sessions, query)]


def hot_spots(sessions: sessionmaker, period: Period, repeated: int = REPEATED) -> list[HotSpot]:
    """Areas with at least `repeated` outages or complaints in the period, the busiest first.
    A complaint's area is its account's area, else a known area named in its place, else
    the place as the customer wrote it."""
    outages = (
        select(models.Area.name.label("area"), literal(1).label("outages"), literal(0).label("complaints"))
        .join(models.Outage, models.Outage.area_id == models.Area.id)
        .where(period.holds(models.Outage.starts_at))
    )
    account_area = (
        select(models.Area.name)
        .join(models.Account, models.Account.area_id == models.Area.id)
        .where(models.Account.number == TicketRow.account_number)
        .correlate(TicketRow)
        .scalar_subquery()
    )
    named_area = (
        select(models.Area.name)
        .where(TicketRow.place.contains(models.Area.name))
        .order_by(func.length(models.Area.name).desc())
        .limit(1)
        .correlate(TicketRow)
        .scalar_subquery()
    )
    area = func.coalesce(account_area, named_area, func.nullif(func.trim(TicketRow.place), ""))
    complaints = select(area.label("area"), literal(0).label("outages"), literal(1).label("complaints")).where(
        TicketRow.request_type == "complaint", period.holds(TicketRow.created_at), area.is_not(None)
    )
    both = union_all(outages, complaints).subquery()
    outage_count, complaint_count = func.sum(both.c.outages), func.sum(both.c.complaints)
    query = (
        select(both.c.area, outage_count, complaint_count)
        .group_by(both.c.area)
        .having(or_(outage_count >= repeated, complaint_count >= repeated))
        .order_by((outage_count + complaint_count).desc(), both.c.area)
    )
    return [HotSpot(a, int(o), int(c)) for a, o, c in _rows(sessions, query)]


def complaints_by_unit(sessions: sessionmaker, period: Period) -> list[UnitComplaints]:
    """Complaints per staff member or unit named on them (`tickets.unit`), most first."""
    count = func.count(TicketRow.id)
    query = (
        select(TicketRow.unit, count, func.sum(case((TicketRow.substantiated.is_(True), 1), else_=0)))
        .where(TicketRow.unit.is_not(None), TicketRow.request_type == "complaint")
        .where(period.holds(TicketRow.created_at))
        .group_by(TicketRow.unit)
        .order_by(count.desc(), TicketRow.unit)
    )
    return [UnitComplaints(unit, n, int(s or 0)) for unit, n, s in _rows(sessions, query)]


def _rows(sessions: sessionmaker, query) -> Sequence[tuple]:
    with sessions() as session:
        return session.execute(query).all()


def _day(value) -> date:
    """SQLite's date() gives text, PostgreSQL's a date."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
