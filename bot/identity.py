"""Identity check before anything about an account is disclosed.

The customer proves they hold the account with the holder's name (户名) or the
last four digits of the phone on file. One answer may carry one guess only, so
"0001 0002 0003" cannot try three phones at once.
"""

from __future__ import annotations

import re

from bot.accounts import PHONE_NUMBER, digits_of
from bot.text import normalize
from bot.utility.records import Account

MAX_ATTEMPTS = 3
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


def attempts_left(failures: int) -> int:
    return max(0, MAX_ATTEMPTS - failures)
