"""阶梯电价 (tiered tariff) for residential customers.

The monthly thresholds and prices differ by province; the defaults are a typical
three-tier scheme and can be changed with TARIFF_TIERS, e.g. "230:0.5283,400:0.5783,:0.8283"
(upper bound in kWh per month : price in yuan per kWh; the last tier has no bound).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

DEFAULT_TIERS = "230:0.5283,400:0.5783,:0.8283"


@dataclass(frozen=True)
class Tier:
    number: int
    upper_kwh: Decimal | None  # None: no upper bound
    price: Decimal


def tiers() -> list[Tier]:
    spec = os.environ.get("TARIFF_TIERS", DEFAULT_TIERS)
    result = []
    for number, part in enumerate(spec.split(","), start=1):
        upper, price = part.split(":")
        result.append(Tier(number, Decimal(upper) if upper else None, Decimal(price)))
    return result


def tier_of(usage_kwh: Decimal) -> Tier:
    """The highest tier a month's usage reaches."""
    for tier in tiers():
        if tier.upper_kwh is None or usage_kwh <= tier.upper_kwh:
            return tier
    raise ValueError("the last tier must have no upper bound")


def amount_for(usage_kwh: Decimal) -> Decimal:
    """The bill for a month's usage: each kWh priced at its own tier."""
    total = Decimal(0)
    lower = Decimal(0)
    for tier in tiers():
        upper = usage_kwh if tier.upper_kwh is None else min(usage_kwh, tier.upper_kwh)
        if upper > lower:
            total += (upper - lower) * tier.price
        if tier.upper_kwh is None or usage_kwh <= tier.upper_kwh:
            break
        lower = tier.upper_kwh
    return total.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
