"""Outages (停电) of a supply area: the one going on now and the planned ones ahead."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.text import normalize
from bot.utility import UtilityData, UtilityUnavailable
from bot.utility.records import Outage


@dataclass(frozen=True)
class AreaOutages:
    area: str
    current: Outage | None  # power is off now (fault, or a planned outage under way)
    planned: list[Outage]  # planned outages not yet begun
    restoration_overdue: bool  # the estimated or planned end has passed, power still off

    @property
    def situation(self) -> str:
        """none, fault, fault_no_eta, fault_overdue, planned_now or planned_overdue."""
        if self.current is None:
            return "none"
        if self.current.kind == "planned":
            return "planned_overdue" if self.restoration_overdue else "planned_now"
        if self.restoration_overdue:
            return "fault_overdue"
        return "fault" if self.current.ends_at else "fault_no_eta"


def area_outages(utility: UtilityData, area: str, now: datetime) -> AreaOutages:
    outages = utility.outages(area, now)
    current = next((o for o in outages if o.starts_at <= now), None)
    planned = [o for o in outages if o.kind == "planned" and o.starts_at > now]
    overdue = bool(current and current.ends_at and current.ends_at <= now)
    return AreaOutages(area, current, planned, overdue)


def known_area_in(utility: UtilityData, text: str | None) -> str | None:
    """The known area a customer names in free text (光明路 in 光明路那边停电了吗);
    None when there is none, or when the company's system cannot say."""
    text = normalize(text)
    if not text:
        return None
    try:
        areas = utility.areas()
    except UtilityUnavailable:
        return None
    for area in areas:
        if area.name in text or (len(text) >= 2 and text in area.name):
            return area.name
    return None
