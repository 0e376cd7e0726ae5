"""Outages (停电) of a supply area: the one going on now and the planned ones ahead."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.text import normalize
from bot.utility import UtilityData
from bot.utility.records import Outage


@dataclass(frozen=True)
class AreaOutages:
    area: str
    current: Outage | None  # power is off now (fault, or a planned outage under way)
    planned: list[Outage]  # planned outages not yet begun
    restoration_overdue: bool  # the estimated restoration time has passed, power still off


def area_outages(utility: UtilityData, area: str, now: datetime) -> AreaOutages:
    outages = utility.outages(area, now)
    current = next((o for o in outages if o.starts_at <= now), None)
    planned = [o for o in outages if o.kind == "planned" and o.starts_at > now]
    overdue = bool(current and current.ends_at and current.ends_at <= now)
    return AreaOutages(area, current, planned, overdue)


def match_area(utility: UtilityData, text: str | None) -> str | None:
    """The known area a customer names in free text (光明路 in 光明路那边停电了吗)."""
    text = normalize(text)
    if not text:
        return None
    for area in utility.areas():
        if area.name in text or (len(text) >= 2 and text in area.name):
            return area.name
    return None
