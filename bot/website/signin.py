"""The demo sign-in to the online service hall (网上营业厅): a 户号 and the holder's name
(户主姓名), checked against the company's data like the bot's identity check, with the
same failure count (three wrong answers in 24 hours lock the account's lookups, in chat
too). A real site has its own accounts and passwords; what matters to the chat is that
the site knows who is signed in, and says so with a signed cookie."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

from bot import clock
from bot.accounts import parse
from bot.identity import identity_attempts, matches
from bot.utility import UtilityUnavailable, utility_data

COOKIE = "website_customer"
SESSION_SECONDS = 2 * 3600
WRONG = "户号或户主姓名不正确"
LOCKED = "该户号验证失败次数过多，请24小时后再试，或拨打95598"


class SignInRefused(Exception):
    """The sign-in failed; the message is for the visitor."""


@dataclass(frozen=True)
class Customer:
    """A signed-in customer: the 户号 and when the sign-in ends (epoch seconds)."""

    account_number: str
    expires: int


def sign_in(account_text: str, name: str) -> str:
    """The account number when the holder's name (or the phone's last four digits, as in
    the chat) matches it; raises SignInRefused."""
    number = parse(account_text).number
    if not number or not name.strip():
        raise SignInRefused("请输入10位户号和户主姓名")
    now = clock.now()
    attempts = identity_attempts()
    try:
        if attempts.attempts_left(number, now) == 0:
            raise SignInRefused(LOCKED)
        account = utility_data().account(number)
        if account is None:
            raise SignInRefused(WRONG)  # the same words as a wrong name: no probing for numbers
        if not matches(account, name):
            raise SignInRefused(WRONG if attempts.record_failure(number, now) else LOCKED)
        attempts.clear(number)
    except UtilityUnavailable as error:
        raise SignInRefused("系统繁忙，请稍后再试") from error
    return number


def cookie_value(account_number: str, secret: str, now: float | None = None) -> str:
    """`number.expires.signature`, signed with a key of its own derived from the secret."""
    expires = int(now if now is not None else time.time()) + SESSION_SECONDS
    return f"{account_number}.{expires}.{_signature(account_number, expires, secret)}"


def customer_of(cookie: str | None, secret: str) -> Customer | None:
    """The signed-in customer of a cookie, or None (absent, forged, expired, no secret)."""
    if not cookie or not secret or cookie.count(".") != 2:
        return None
    number, expires_text, signature = cookie.split(".")
    if not expires_text.isdigit() or int(expires_text) < time.time():
        return None
    if not hmac.compare_digest(signature.encode(), _signature(number, int(expires_text), secret).encode()):
        return None
    return Customer(number, int(expires_text))


def _signature(account_number: str, expires: int, secret: str) -> str:
    # a key for the site's cookie alone: a cookie is never a valid chat token, nor the reverse
    key = hmac.new(secret.encode(), b"website-session", hashlib.sha256).digest()
    return hmac.new(key, f"{account_number}|{expires}".encode(), hashlib.sha256).hexdigest()
