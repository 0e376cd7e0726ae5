"""UtilityData over the embedded database (the demo data)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bot import models
from bot.db import session_factory
from bot.utility import UtilityUnavailable
from bot.utility.records import (
    Account,
    Area,
    Bill,
    Outage,
    Payment,
    Reading,
    ReconnectionOrder,
)


class SqlUtilityData:
    def __init__(self, database_url: str) -> None:
        self._sessions = session_factory(database_url)

    @contextmanager
    def _session(self) -> Iterator[Session]:
        try:
            with self._sessions() as session:
                yield session
        except SQLAlchemyError as error:
            raise UtilityUnavailable(f"database error: {type(error).__name__}") from error

    def account(self, number: str) -> Account | None:
        with self._session() as session:
            row = session.execute(
                select(models.Account, models.Area.name)
                .join(models.Area, models.Area.id == models.Account.area_id)
                .where(models.Account.number == number)
            ).first()
        if row is None:
            return None
        account, area = row
        return Account(
            account.number,
            account.holder_name,
            account.phone,
            area,
            account.address,
            account.status,
            bool(account.key_account),
        )

    def bills(self, number: str, limit: int = 24) -> list[Bill]:
        with self._session() as session:
            rows = session.scalars(
                select(models.Bill)
                .where(models.Bill.account_number == number)
                .order_by(models.Bill.period.desc())
                .limit(limit)
            ).all()
        return [
            Bill(b.account_number, b.period, b.usage_kwh, b.amount, b.due_date, b.paid_at, b.reading_estimated)
            for b in rows
        ]

    def readings(self, number: str, limit: int = 6) -> list[Reading]:
        with self._session() as session:
            rows = session.scalars(
                select(models.MeterReading)
                .where(models.MeterReading.account_number == number)
                .order_by(models.MeterReading.read_on.desc())
                .limit(limit)
            ).all()
        return [Reading(r.account_number, r.read_on, r.reading_kwh, r.usage_kwh, r.estimated) for r in rows]

    def payments(self, number: str, limit: int = 10) -> list[Payment]:
        with self._session() as session:
            rows = session.scalars(
                select(models.Payment)
                .where(models.Payment.account_number == number)
                .order_by(models.Payment.paid_at.desc())
                .limit(limit)
            ).all()
        return [Payment(p.account_number, p.paid_at, p.amount, p.channel) for p in rows]

    def reconnection_orders(self, number: str) -> list[ReconnectionOrder]:
        with self._session() as session:
            rows = session.scalars(
                select(models.ReconnectionOrder)
                .where(models.ReconnectionOrder.account_number == number)
                .order_by(models.ReconnectionOrder.created_at.desc())
            ).all()
        return [
            ReconnectionOrder(o.account_number, o.created_at, o.due_at, o.status, o.completed_at)
            for o in rows
        ]

    def areas(self) -> list[Area]:
        with self._session() as session:
            rows = session.scalars(select(models.Area).order_by(models.Area.name)).all()
        return [Area(a.name, a.manager_name, a.manager_phone) for a in rows]

    def outages(self, area: str, now: datetime) -> list[Outage]:
        with self._session() as session:
            rows = session.scalars(
                select(models.Outage)
                .join(models.Area, models.Area.id == models.Outage.area_id)
                .where(models.Area.name == area)
                .where(models.Outage.status != "restored")
                # an outage still in progress is shown even when its estimate has passed
                .where(
                    or_(
                        models.Outage.status == "in_progress",
                        models.Outage.ends_at.is_(None),
                        models.Outage.ends_at > now,
                    )
                )
                .order_by(models.Outage.starts_at)
            ).all()
        return [Outage(area, o.kind, o.starts_at, o.ends_at, o.cause, o.status) for o in rows]
