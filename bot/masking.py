"""Masking of customers' personal data in logs and in what the bot says back."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from bot.accounts import ACCOUNT_NUMBER, PHONE_NUMBER, digits_of


def mask_phone(phone: str) -> str:
    """138****0001"""
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "****"


def mask_account(number: str) -> str:
    """3201****01"""
    return number[:4] + "****" + number[-2:] if len(number) >= 7 else "****"


def mask_openid(openid: str) -> str:
    """oUpF8u****W9sY: a WeChat follower's id, enough to follow one through a log."""
    return openid[:6] + "****" + openid[-4:] if len(openid) > 12 else "****"


def mask_name(name: str) -> str:
    """张* / 欧*** : the first character stays, the rest is hidden."""
    if not name:
        return name
    return name[0] + "*" * max(1, len(name) - 1)


def mask_text(text: str) -> str:
    """Phones and account numbers inside free text."""
    text = PHONE_NUMBER.sub(lambda m: mask_phone(digits_of(m[0])[-11:]), text)
    return ACCOUNT_NUMBER.sub(lambda m: mask_account(digits_of(m[0])), text)


def mask_names(text: str, names: Iterable[str]) -> str:
    """Known personal names inside free text (张伟 → 张*), longest first."""
    for name in sorted({n for n in names if n and len(n) >= 2}, key=len, reverse=True):
        text = text.replace(name, mask_name(name))
    return text


# what a stored copy of a customer's words keeps in place of their personal data
PHONE_PLACEHOLDER, ACCOUNT_PLACEHOLDER, NAME_PLACEHOLDER = "<手机号>", "<户号>", "<姓名>"
ID_PLACEHOLDER, NUMBER_PLACEHOLDER = "<证件号>", "<号码>"
PLACEHOLDERS = (PHONE_PLACEHOLDER, ACCOUNT_PLACEHOLDER, NAME_PLACEHOLDER, ID_PLACEHOLDER, NUMBER_PLACEHOLDER)
_ID_CARD = re.compile(r"(?<!\d)\d{17}[\dXx](?![\dXx])")
_LONG_NUMBER = re.compile(r"\d{7,}")  # any other long number: a card, a fragment of one...
# a name the customer gives: 我叫王小明, 户主是李四 (a surname alone, 张先生, is kept)
_SAID_NAME = re.compile(r"(?:我叫|名字是|名字叫|姓名是?|户主是|户主叫|户主|户名是?)\s*[:：]?\s*([\u4e00-\u9fff·]{2,4})")


def redact(text: str, names: Iterable[str] = ()) -> str:
    """The text with personal data replaced by placeholders (<手机号>, <户号>, <姓名>,
    <证件号>, <号码>), for copies kept for people to read later, such as the trainers' inbox."""
    text = _ID_CARD.sub(ID_PLACEHOLDER, text)
    text = PHONE_NUMBER.sub(PHONE_PLACEHOLDER, text)
    text = ACCOUNT_NUMBER.sub(ACCOUNT_PLACEHOLDER, text)
    text = _LONG_NUMBER.sub(NUMBER_PLACEHOLDER, text)
    for name in sorted({n for n in names if n and len(n) >= 2}, key=len, reverse=True):
        text = text.replace(name, NAME_PLACEHOLDER)
    return _SAID_NAME.sub(lambda m: m[0][: m.start(1) - m.start(0)] + NAME_PLACEHOLDER, text)


class MaskingFilter(logging.Filter):
    """Masks phones and account numbers in every record that passes a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def install_log_masking() -> None:
    """Put the masking filter on every handler of the root logger (idempotent)."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO)
    for handler in root.handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())
