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
    bill: Bill | None  # the month's bill; the latest when the month is not billed yet
    not_billed_yet: bool  # the month asked for comes after the latest bill
    earliest: date | None  # the range of months on record
    latest: date | None


def find_bill(utility: UtilityData, account_number: str, month: date | None) -> BillLookup:
    """The bill of `month`, or the latest bill when no month is given or it is not billed yet."""
    bills = utility.bills(account_number, limit=24)
    if not bills:
        return BillLookup(None, False, None, None)
    earliest, latest = bills[-1].period, bills[0].period
    if month is None:
        return BillLookup(bills[0], False, earliest, latest)
    if month > latest:
        return BillLookup(bills[0], True, earliest, latest)
    return BillLookup(next((b for b in bills if b.period == month), None), False, earliest, latest)


def bill_status(bill: Bill, today: date) -> str:
    """paid, unpaid (not yet due) or overdue."""
    if bill.paid:
        return "paid"
    return "unpaid" if bill.due_date >= today else "overdue"


@dataclass(frozen=True)
class HighBillExplanation:
    bill: Bill
    previous: Bill | None
    year_ago: Bill | None
    tier: tariff.Tier
    previous_tier: tariff.Tier | None

    @property
    def usage_change_kwh(self) -> Decimal | None:
        return None if not self.previous else self.bill.usage_kwh - self.previous.usage_kwh

    @property
    def crossed_tier(self) -> bool:
        """This month reached a higher price tier than the month before, and the bill was
        priced by the configured tiers (so the claim is about this bill, not a guess)."""
        priced_by_tiers = tariff.amount_for(self.bill.usage_kwh) == self.bill.amount
        return priced_by_tiers and self.previous_tier is not None and self.tier.number > self.previous_tier.number

    @property
    def catch_up_after_estimate(self) -> bool:
        """Last month was estimated (估抄) too low and this one was actually read: the gap lands now."""
        previous = self.previous
        return bool(
            previous
            and previous.reading_estimated
            and not self.bill.reading_estimated
            and self.bill.usage_kwh > previous.usage_kwh
        )

    def reasons(self) -> list[str]:
        """What explains the amount, most important first: estimated_catch_up, usage_up or
        usage_not_up; then tier_crossed and this_month_estimated where they apply."""
        found = []
        if self.catch_up_after_estimate:
            found.append("estimated_catch_up")
        elif self.previous is not None:
            found.append("usage_up" if self.usage_change_kwh > 0 else "usage_not_up")
        if self.crossed_tier:
            found.append("tier_crossed")
        if self.bill.reading_estimated:
            found.append("this_month_estimated")
        return found


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
