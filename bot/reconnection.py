"""Paid the arrears, still no power (交清电费后不能及时送电): what the data says.

The promise is power back within 24 hours of payment; the reconnection order
(复电工单) carries its due time. An overdue order is the company's failure and
gets an urgent ticket with the facts filled in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.utility import UtilityData
from bot.utility.records import Payment, ReconnectionOrder

RECENT_PAYMENT = timedelta(days=7)


@dataclass(frozen=True)
class Reconnection:
    # overdue | pending | restored | paid_no_order | unpaid | not_disconnected | unknown_account
    situation: str
    payment: Payment | None = None
    order: ReconnectionOrder | None = None
    overdue_by: timedelta | None = None


def reconnection_status(utility: UtilityData, number: str, now: datetime) -> Reconnection:
    account = utility.account(number)
    if account is None:
        return Reconnection("unknown_account")
    payments = utility.payments(number, limit=5)
    payment = next((p for p in payments if now - p.paid_at <= RECENT_PAYMENT), None)
    orders = utility.reconnection_orders(number)
    order = orders[0] if orders else None
    if order is not None and order.status == "pending":
        if order.due_at < now:
            return Reconnection("overdue", payment, order, now - order.due_at)
        return Reconnection("pending", payment, order)
    if account.status != "disconnected":
        if order is not None and order.completed_at and now - order.completed_at <= RECENT_PAYMENT:
            return Reconnection("restored", payment, order)
        return Reconnection("not_disconnected", payment, order)
    # disconnected, and no order under way: an old, completed order says nothing now
    return Reconnection("paid_no_order" if payment else "unpaid", payment, None)
