"""A customer the channel already knows: the website's signed-in customer, a WeChat
follower whose openid is bound to a 户号. The channel vouches for the 户号 with a signed
token in the message's metadata (`metadata["customer"]`); the bot then needs no 户号 and
no identity check. Anyone can put metadata on a message (the REST webhook takes it), so
only a token signed with CUSTOMER_TOKEN_SECRET counts; without that secret nothing does."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

from bot.accounts import parse
from bot.config import load_settings

SOURCES = ("website", "wechat")


def vouch(account_number: str, source: str, lifetime_seconds: int = 12 * 3600) -> dict[str, Any]:
    """The metadata entry a channel adds to a known customer's messages."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}")
    expires = int(time.time()) + lifetime_seconds
    return {
        "account_number": account_number,
        "source": source,
        "expires": expires,
        "signature": _signature(account_number, source, expires),
    }


def vouched_account(metadata: dict[str, Any] | None) -> str | None:
    """The 户号 a channel vouched for in this message, or None (absent, forged, expired)."""
    customer = (metadata or {}).get("customer")
    if not isinstance(customer, dict) or not load_settings().customer_token_secret:
        return None
    number = parse(str(customer.get("account_number") or "")).number
    source, expires, signature = customer.get("source"), customer.get("expires"), customer.get("signature")
    if not number or source not in SOURCES or not isinstance(expires, int) or not isinstance(signature, str):
        return None
    expected = _signature(number, source, expires)
    if expires < time.time() or not hmac.compare_digest(signature.encode(), expected.encode()):
        return None
    return number


def _signature(account_number: str, source: str, expires: int) -> str:
    key = load_settings().customer_token_secret.encode()
    message = f"{account_number}|{source}|{expires}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()
