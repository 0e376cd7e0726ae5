"""How values read in Chinese replies: money, energy, dates, times."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from bot.utility.records import Reading


def yuan(amount: Decimal) -> str:
    return f"{amount:.2f}元"


def kwh(value: Decimal) -> str:
    return f"{value.normalize():f}度" if value == value.to_integral() else f"{value:.1f}度"


def day(value: date) -> str:
    return f"{value.month}月{value.day}日"


def moment(value: datetime, now: datetime) -> str:
    """今天14:30 / 明天08:00 / 11月22日 09:15"""
    delta = (value.date() - now.date()).days
    prefix = {0: "今天", 1: "明天", -1: "昨天"}.get(delta, day(value))
    return f"{prefix}{value:%H:%M}"


def readings_table(readings: list[Reading]) -> str:
    """One line a reading, oldest first, marking estimated ones (估抄)."""
    lines = []
    for r in sorted(readings, key=lambda r: r.read_on):
        note = "（估抄）" if r.estimated else ""
        lines.append(f"· {day(r.read_on)}  表码 {r.reading_kwh:.1f}  用电 {kwh(r.usage_kwh)}{note}")
    return "\n".join(lines)
