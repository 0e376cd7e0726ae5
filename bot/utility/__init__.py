"""The company's systems as the bot sees them: accounts, bills, readings, payments,
reconnection orders and outages. The bot never owns this truth; it asks.

`SqlUtilityData` reads the embedded demo database (the default); `HttpUtilityData`
asks the company's systems over HTTP. UTILITY_BACKEND chooses.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import lru_cache
from typing import Protocol

from bot.config import Settings, load_settings
from bot.utility.records import (
    Account,
    Area,
    Bill,
    Outage,
    Payment,
    Reading,
    ReconnectionOrder,
)

log = logging.getLogger(__name__)


class UtilityUnavailable(Exception):
    """The company's system did not answer in time or answered with an error."""


class UtilityData(Protocol):
    def account(self, number: str) -> Account | None: ...

    def bills(self, number: str, limit: int = 24) -> list[Bill]:
        """Newest first."""

    def readings(self, number: str, limit: int = 6) -> list[Reading]:
        """Newest first."""

    def payments(self, number: str, limit: int = 10) -> list[Payment]:
        """Newest first."""

    def reconnection_orders(self, number: str) -> list[ReconnectionOrder]:
        """Newest first."""

    def areas(self) -> list[Area]: ...

    def outages(self, area: str, now: datetime) -> list[Outage]:
        """Outages of the area that are in progress or not yet over, earliest first."""


def account_or_none(number: str | None) -> Account | None:
    """The account of a 户号, or None when none is given, it is unknown, or the company's
    system does not answer (the caller carries on without the account's details)."""
    if not number:
        return None
    try:
        return utility_data().account(number)
    except UtilityUnavailable:
        log.warning("company system unavailable: carrying on without the account's details")
        return None


def utility_data() -> UtilityData:
    """The configured implementation (one per configuration, for the life of the process)."""
    return _build(load_settings())


@lru_cache(maxsize=4)
def _build(settings: Settings) -> UtilityData:
    if settings.utility_backend == "http":
        from bot.utility.http import HttpUtilityData

        return HttpUtilityData(
            settings.utility_api_url,
            timeout=settings.utility_timeout_seconds,
            retries=settings.utility_retries,
        )
    if settings.utility_backend == "sql":
        from bot.utility.sql import SqlUtilityData

        return SqlUtilityData(settings.database_url)
    raise ValueError(f"UTILITY_BACKEND must be 'sql' or 'http', not {settings.utility_backend!r}")


__all__ = [
    "Account",
    "Area",
    "Bill",
    "Outage",
    "Payment",
    "Reading",
    "ReconnectionOrder",
    "UtilityData",
    "UtilityUnavailable",
    "account_or_none",
    "utility_data",
]
