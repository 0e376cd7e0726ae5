"""What the company's systems answer, as plain values (no ORM objects leave bot/utility)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal


@dataclass(frozen=True)
class Area:
    name: str
    manager_name: str
    manager_phone: str


@dataclass(frozen=True)
class Account:
    number: str
    holder_name: str
    phone: str
    area: str
    address: str
    status: str  # normal | disconnected
    key_account: bool = False  # 重要客户 (hospital, school, key enterprise)


@dataclass(frozen=True)
class Bill:
    account_number: str
    period: date  # first day of the billed month
    usage_kwh: Decimal
    amount: Decimal
    due_date: date
    paid_at: datetime | None
    reading_estimated: bool

    @property
    def paid(self) -> bool:
        return self.paid_at is not None


@dataclass(frozen=True)
class Reading:
    account_number: str
    read_on: date
    reading_kwh: Decimal
    usage_kwh: Decimal
    estimated: bool


@dataclass(frozen=True)
class Payment:
    account_number: str
    paid_at: datetime
    amount: Decimal
    channel: str


@dataclass(frozen=True)
class ReconnectionOrder:
    account_number: str
    created_at: datetime
    due_at: datetime
    status: str  # pending | done
    completed_at: datetime | None


@dataclass(frozen=True)
class Outage:
    area: str
    kind: str  # fault | planned
    starts_at: datetime
    ends_at: datetime | None
    cause: str | None
    status: str  # in_progress | scheduled | restored
