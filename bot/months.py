"""Which billing month a customer means: 上个月, 9月, 九月份, 去年12月, 2026年9月 ..."""

from __future__ import annotations

import re
from datetime import date

_CN_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
_RELATIVE = {"上上个月": -2, "上上月": -2, "上个月": -1, "上月": -1, "这个月": 0, "本月": 0, "当月": 0, "这月": 0}
_EXPLICIT = re.compile(r"(?:(\d{4}|\d{2})年|(去年|前年|今年))?\s*(\d{1,2}|[一二两三四五六七八九十]{1,3})\s*月")


def shift(month: date, months: int) -> date:
    """The first day of the month `months` away from `month`."""
    index = month.year * 12 + month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _cn_number(text: str) -> int | None:
    if text.isdigit():
        return int(text)
    if text == "十":
        return 10
    if text.startswith("十"):
        return 10 + _CN_DIGITS.get(text[1:], 0)
    if text.endswith("十"):
        return None
    if len(text) == 1:
        return _CN_DIGITS.get(text)
    return None


def resolve(expression: str | None, today: date) -> date | None:
    """The first day of the month meant, or None when the words name no month.

    A bare month (9月) is the most recent such month that has begun; a month not
    yet begun this year means last year's.
    """
    if not expression:
        return None
    this_month = today.replace(day=1)
    for words, offset in _RELATIVE.items():
        if words in expression:
            return shift(this_month, offset)
    match = _EXPLICIT.search(expression)
    if not match:
        return None
    number = _cn_number(match[3])
    if number is None or not 1 <= number <= 12:
        return None
    if match[1]:
        year = int(match[1])
        return date(year + 2000 if year < 100 else year, number, 1)
    if match[2] == "去年":
        return date(today.year - 1, number, 1)
    if match[2] == "前年":
        return date(today.year - 2, number, 1)
    candidate = date(today.year, number, 1)
    if match[2] != "今年" and candidate > this_month:
        candidate = date(today.year - 1, number, 1)
    return candidate


def label(month: date) -> str:
    """2026年9月"""
    return f"{month.year}年{month.month}月"
