"""Identity check before anything about an account is disclosed.

The customer proves they hold the account with the holder's name (户名) or the
last four digits of the phone on file. One answer may carry one guess only, so
"0001 0002 0003" cannot try three phones at once. Failures are kept per account in
the bot's database, so a new conversation or a restart does not reset them: three
within LOCK_WINDOW lock the account's lookups (a person takes over and verifies).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import delete, func, select
from sqlalchemy.exc import SQLAlchemyError

from bot.accounts import PHONE_NUMBER, digits_of
from bot.config import load_settings
from bot.db import session_factory
from bot.models import IdentityFailure
from bot.text import normalize
from bot.utility import UtilityUnavailable
from bot.utility.records import Account

# requests that disclose account data and so need a passed check
NEEDS_IDENTITY = ("query_bill", "bill_too_high", "meter_dispute", "payment_not_restored", "query_ticket")
MAX_ATTEMPTS = 3
LOCK_WINDOW = timedelta(hours=24)
_FILLER = re.compile(
    r"户主|户名|姓名|名字|名称|我叫|我是|本人|叫做|叫|是|的|手机|电话|号码|尾号|后四位|后4位|登记|预留|就|吧|啊|呢|嗯|哦|"
    r"[\s,.!?;:，。！？；：、~～\"'“”‘’]"
)
_DIGITS = re.compile(r"\d+")


def matches(account: Account, answer: str) -> bool:
    """True when the answer is the holder's name or the phone's last four digits (or whole phone)."""
    text = PHONE_NUMBER.sub(lambda m: digits_of(m[0])[-11:], normalize(answer))
    groups = [g for g in _DIGITS.findall(text) if g != account.number]
    if groups:
        return len(groups) == 1 and groups[0] in (account.phone[-4:], account.phone)
    return _FILLER.sub("", text) == account.holder_name


class IdentityAttempts:
    """Failed checks per account, in the bot's own database."""

    def __init__(self, database_url: str) -> None:
        self._sessions = session_factory(database_url)

    def failures(self, account_number: str, now: datetime) -> int:
        """Failures within the lock window."""
        try:
            with self._sessions() as session:
                return session.scalar(
                    select(func.count())
                    .select_from(IdentityFailure)
                    .where(IdentityFailure.account_number == account_number)
                    .where(IdentityFailure.failed_at > now - LOCK_WINDOW)
                )
        except SQLAlchemyError as error:
            raise UtilityUnavailable("identity attempts unavailable") from error

    def attempts_left(self, account_number: str, now: datetime) -> int:
        return max(0, MAX_ATTEMPTS - self.failures(account_number, now))

    def record_failure(self, account_number: str, now: datetime) -> int:
        """Record a failure; the attempts left afterwards."""
        try:
            with self._sessions.begin() as session:
                session.add(IdentityFailure(account_number=account_number, failed_at=now))
        except SQLAlchemyError as error:
            raise UtilityUnavailable("identity attempts unavailable") from error
        return self.attempts_left(account_number, now)

    def clear(self, account_number: str) -> None:
        """A passed check forgets the earlier slips."""
        try:
            with self._sessions.begin() as session:
                session.execute(delete(IdentityFailure).where(IdentityFailure.account_number == account_number))
        except SQLAlchemyError as error:
            raise UtilityUnavailable("identity attempts unavailable") from error


def identity_attempts() -> IdentityAttempts:
    return _attempts(load_settings().database_url)


@lru_cache(maxsize=4)
def _attempts(database_url: str) -> IdentityAttempts:
    return IdentityAttempts(database_url)
