"""Bills: the one a customer asks about, and why a bill is higher than usual."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from bot import tariff
from bot.months import shift
from bot.utility import UtilityData
from bot.utility.records import Bill


@dataclass(frozen=True)
class BillLookup:
    bill: Bill | None
    month: date | None  # the month asked for; None means the latest
    earliest: date | None  # the range of months on record, when the month is missing
    latest: date | None


def find_bill(utility: UtilityData, account_number: str, month: date | None) -> BillLookup:
    """The bill of `month`, or the latest bill when no month is given."""
    bills = utility.bills(account_number, limit=24)
    earliest = bills[-1].period if bills else None
    latest = bills[0].period if bills else None
    if month is None:
        return BillLookup(bills[0] if bills else None, None, earliest, latest)
    bill = next((b for b in bills if b.period == month), None)
    return BillLookup(bill, month, earliest, latest)


@dataclass(frozen=True)
class HighBillExplanation:
    bill: Bill
    previous: Bill | None
    year_ago: Bill | None
    tier: tariff.Tier
    previous_tier: tariff.Tier | None

    @property
    def usage_change_percent(self) -> int | None:
        if not self.previous or not self.previous.usage_kwh:
            return None
        return round((self.bill.usage_kwh - self.previous.usage_kwh) * 100 / self.previous.usage_kwh)

    @property
    def usage_change_kwh(self) -> Decimal | None:
        return None if not self.previous else self.bill.usage_kwh - self.previous.usage_kwh

    @property
    def crossed_tier(self) -> bool:
        """This month reached a higher price tier than the month before."""
        return self.previous_tier is not None and self.tier.number > self.previous_tier.number

    @property
    def catch_up_after_estimate(self) -> bool:
        """Last month was estimated (估抄) and this one was actually read: the gap lands now."""
        return bool(self.previous and self.previous.reading_estimated and not self.bill.reading_estimated)


def explain_high_bill(utility: UtilityData, account_number: str, month: date | None) -> HighBillExplanation | None:
    """The facts behind a bill that looks high, from the account's own data."""
    bills = utility.bills(account_number, limit=24)
    if not bills:
        return None
    by_period = {b.period: b for b in bills}
    # "这个月电费怎么这么高" is about the newest bill, even before this month is billed
    bill = bills[0] if month is None or month > bills[0].period else by_period.get(month)
    if bill is None:
        return None
    previous = by_period.get(shift(bill.period, -1))
    return HighBillExplanation(
        bill=bill,
        previous=previous,
        year_ago=by_period.get(shift(bill.period, -12)),
        tier=tariff.tier_of(bill.usage_kwh),
        previous_tier=tariff.tier_of(previous.usage_kwh) if previous else None,
    )
