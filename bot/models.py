"""Tables of the embedded utility data: what the company's own systems hold in production.

户号 (account number) is the customer's 10-digit account; 台区 (area) is the
supply area a customer manager owns (网格化管理).
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.types import TypeDecorator

from bot.db import Base


class Quantity(TypeDecorator):
    """An exact decimal (money, kWh). SQLite has no decimal type: there the value
    travels as a float and is rounded back to its scale, which is exact at this size."""

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Numeric(self.impl.precision, self.impl.scale, asdecimal=False))
        return dialect.type_descriptor(self.impl)

    def process_bind_param(self, value, dialect):
        if value is not None and dialect.name == "sqlite":
            return float(value)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return Decimal(str(value)).quantize(Decimal(1).scaleb(-self.impl.scale))


class Area(Base):
    __tablename__ = "areas"

    id = Column(Integer, primary_key=True)
    name = Column(String(64), nullable=False, unique=True)
    manager_name = Column(String(32), nullable=False)
    manager_phone = Column(String(20), nullable=False)


class Account(Base):
    __tablename__ = "accounts"

    number = Column(String(10), primary_key=True)
    holder_name = Column(String(32), nullable=False)
    phone = Column(String(11), nullable=False)
    area_id = Column(Integer, ForeignKey("areas.id"), nullable=False)
    address = Column(String(128), nullable=False)
    status = Column(String(16), nullable=False, default="normal")  # normal | disconnected
    # 重要客户: hospitals, schools, key enterprises; their complaints get high priority
    key_account = Column(Boolean, nullable=False, default=False, server_default=false())


class Bill(Base):
    __tablename__ = "bills"
    __table_args__ = (UniqueConstraint("account_number", "period"),)

    id = Column(Integer, primary_key=True)
    account_number = Column(String(10), ForeignKey("accounts.number"), nullable=False, index=True)
    period = Column(Date, nullable=False)  # first day of the billed month
    usage_kwh = Column(Quantity(10, 1), nullable=False)
    amount = Column(Quantity(10, 2), nullable=False)
    due_date = Column(Date, nullable=False)
    paid_at = Column(DateTime)
    reading_estimated = Column(Boolean, nullable=False, default=False)  # 估抄


class MeterReading(Base):
    __tablename__ = "meter_readings"

    id = Column(Integer, primary_key=True)
    account_number = Column(String(10), ForeignKey("accounts.number"), nullable=False, index=True)
    read_on = Column(Date, nullable=False)
    reading_kwh = Column(Quantity(12, 1), nullable=False)
    usage_kwh = Column(Quantity(10, 1), nullable=False)
    estimated = Column(Boolean, nullable=False, default=False)


class Payment(Base):
    __tablename__ = "payments"

    id = Column(Integer, primary_key=True)
    account_number = Column(String(10), ForeignKey("accounts.number"), nullable=False, index=True)
    paid_at = Column(DateTime, nullable=False)
    amount = Column(Quantity(10, 2), nullable=False)
    channel = Column(String(32), nullable=False)


class ReconnectionOrder(Base):
    """复电工单: opened when arrears are paid; the promise is power back within 24 h."""

    __tablename__ = "reconnection_orders"

    id = Column(Integer, primary_key=True)
    account_number = Column(String(10), ForeignKey("accounts.number"), nullable=False, index=True)
    created_at = Column(DateTime, nullable=False)
    due_at = Column(DateTime, nullable=False)
    status = Column(String(16), nullable=False)  # pending | done
    completed_at = Column(DateTime)


class Outage(Base):
    __tablename__ = "outages"

    id = Column(Integer, primary_key=True)
    area_id = Column(Integer, ForeignKey("areas.id"), nullable=False, index=True)
    kind = Column(String(16), nullable=False)  # fault | planned
    starts_at = Column(DateTime, nullable=False)
    ends_at = Column(DateTime)  # estimated restoration (fault) or planned end; None if unknown
    cause = Column(Text)
    status = Column(String(16), nullable=False)  # in_progress | scheduled | restored


class Meta(Base):
    """Small key/value facts about the database itself (e.g. when the demo data was made)."""

    __tablename__ = "meta"

    key = Column(String(64), primary_key=True)
    value = Column(String(256), nullable=False)


class IdentityFailure(Base):
    """A failed identity check: three within the lock window lock the account's lookups."""

    __tablename__ = "identity_failures"

    id = Column(Integer, primary_key=True)
    account_number = Column(String(10), nullable=False, index=True)
    failed_at = Column(DateTime, nullable=False)
