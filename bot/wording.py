"""How values read in Chinese replies: money, energy, dates, times."""

from __future__ import annotations

from datetime import date, datetime, timedelta
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


def change_words(change_kwh: Decimal) -> str:
    """多了12度 / 少了3度 / 持平"""
    if change_kwh > 0:
        return f"多了{kwh(change_kwh)}"
    if change_kwh < 0:
        return f"少了{kwh(-change_kwh)}"
    return "持平"


def window(start: datetime, end: datetime | None, now: datetime) -> str:
    """明天08:00至16:00 / 今天14:00至明天02:00 / 今天14:00起"""
    if end is None:
        return f"{moment(start, now)}起"
    if start.date() == end.date():
        return f"{moment(start, now)}至{end:%H:%M}"
    return f"{moment(start, now)}至{moment(end, now)}"


def duration(span: timedelta) -> str:
    """45分钟 / 2小时 / 1小时30分钟 / 2天"""
    minutes = max(1, round(span.total_seconds() / 60))
    if minutes < 60:
        return f"{minutes}分钟"
    hours, rest = divmod(minutes, 60)
    if hours >= 48 and rest == 0 and hours % 24 == 0:
        return f"{hours // 24}天"
    return f"{hours}小时{rest}分钟" if rest else f"{hours}小时"
