"""UtilityData over the company's HTTP API (the contract is in docs/company-api.md)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from bot.masking import mask_text
from bot.utility import UtilityUnavailable
from bot.utility.codec import from_json
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
T = TypeVar("T")


class HttpUtilityData:
    def __init__(self, base_url: str, timeout: float = 3.0, retries: int = 1) -> None:
        self._base = base_url.rstrip("/")
        self._timeout = timeout
        self._http = requests.Session()
        retry = Retry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            backoff_factor=0.2,
            status_forcelist=(502, 503, 504),
            allowed_methods=frozenset({"GET"}),
            raise_on_status=False,
        )
        self._http.mount("http://", HTTPAdapter(max_retries=retry))
        self._http.mount("https://", HTTPAdapter(max_retries=retry))

    def _get(self, path: str, **params: Any) -> Any | None:
        """The JSON body, or None on 404; UtilityUnavailable on anything else that is not 200."""
        url = self._base + path
        try:
            response = self._http.get(url, params=params or None, timeout=self._timeout)
        except requests.RequestException as error:
            log.warning("company API unreachable: %s %s", mask_text(path), type(error).__name__)
            raise UtilityUnavailable(f"{type(error).__name__} calling the company API") from error
        if response.status_code == 404 and _is_not_found(response):
            return None
        if response.status_code != 200:
            log.warning("company API answered %s for %s", response.status_code, mask_text(path))
            raise UtilityUnavailable(f"company API answered {response.status_code}")
        try:
            return response.json()
        except ValueError as error:
            raise UtilityUnavailable("company API answered something that is not JSON") from error

    def _records(self, cls: type[T], path: str, **params: Any) -> list[T]:
        return _parse(cls, self._get(path, **params) or [], path)

    def account(self, number: str) -> Account | None:
        path = f"/accounts/{quote(number, safe='')}"
        data = self._get(path)
        return None if data is None else _parse(Account, [data], path)[0]

    def bills(self, number: str, limit: int = 24) -> list[Bill]:
        return self._records(Bill, f"/accounts/{quote(number, safe='')}/bills", limit=limit)

    def readings(self, number: str, limit: int = 6) -> list[Reading]:
        return self._records(Reading, f"/accounts/{quote(number, safe='')}/readings", limit=limit)

    def payments(self, number: str, limit: int = 10) -> list[Payment]:
        return self._records(Payment, f"/accounts/{quote(number, safe='')}/payments", limit=limit)

    def reconnection_orders(self, number: str) -> list[ReconnectionOrder]:
        return self._records(ReconnectionOrder, f"/accounts/{quote(number, safe='')}/reconnection-orders")

    def areas(self) -> list[Area]:
        return self._records(Area, "/areas")

    def outages(self, area: str, now: datetime) -> list[Outage]:
        return self._records(Outage, f"/areas/{quote(area, safe='')}/outages", now=now.isoformat())

def _parse(cls: type[T], items: Any, path: str) -> list[T]:
    """Records from the answer, or UtilityUnavailable when it is not the contract's shape."""
    try:
        return [from_json(cls, item) for item in items]
    except (KeyError, TypeError, ValueError, ArithmeticError) as error:
        log.warning("company API answered %s in an unexpected shape", mask_text(path))
        raise UtilityUnavailable("company API answered an unexpected shape") from error


def _is_not_found(response: requests.Response) -> bool:
    """The contract's "no such record" answer, not a 404 from a wrong URL or a proxy."""
    try:
        return response.json() == {"error": "not found"}
    except ValueError:
        return False
