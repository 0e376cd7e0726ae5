"""The company's local time. Everything stores naive local datetimes (Beijing time)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from bot.config import timezone_name


def _zone() -> ZoneInfo:
    return ZoneInfo(timezone_name())


def now() -> datetime:
    """The current local time, naive, in the company's time zone."""
    return datetime.now(_zone()).replace(tzinfo=None, microsecond=0)


def today() -> date:
    return now().date()


def from_timestamp(seconds: float) -> datetime:
    """A Unix timestamp (Rasa's event times) as local naive time."""
    return datetime.fromtimestamp(seconds, _zone()).replace(tzinfo=None, microsecond=0)
