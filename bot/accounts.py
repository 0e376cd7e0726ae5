"""户号 (account number) and phone number recognition in what a customer typed."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.text import normalize

ACCOUNT_DIGITS = 10
# as people write them: 3201000001, 3201 0000 01, 3201-000-001; 13800000001, 138 0000 0001, +86…
ACCOUNT_NUMBER = re.compile(r"(?<![\d+])(?:\d{10}|\d{4}([\s-])(?:\d{4}\1\d{2}|\d{3}\1\d{3}))(?!\d)")
PHONE_NUMBER = re.compile(r"(?<![\d+])(?:\+?86[\s-]?)?1[3-9]\d([\s-]?)\d{4}\1\d{4}(?!\d)")
_DIGIT_RUN = re.compile(r"\d{5,}")
_MIXED = re.compile(r"(?<![0-9A-Za-z])(?=[0-9A-Za-z]*\d)(?=[0-9A-Za-z]*[A-Za-z])[0-9A-Za-z]{8,14}(?![0-9A-Za-z])")


@dataclass(frozen=True)
class AccountNumberParse:
    number: str | None  # a well-formed 10-digit number, if one was given
    problem: str | None  # "wrong_length" | "has_letters" | "missing"
    digits_given: int = 0


def parse(text: str | None) -> AccountNumberParse:
    """Find a 户号 in free text, or say what is wrong with the one given."""
    text = normalize(text)
    found = ACCOUNT_NUMBER.search(text)
    if found:
        return AccountNumberParse(digits_of(found[0]), None, ACCOUNT_DIGITS)
    mixed = _MIXED.search(text)
    if mixed:
        return AccountNumberParse(None, "has_letters", sum(c.isdigit() for c in mixed[0]))
    run = _DIGIT_RUN.search(text)
    if run:
        return AccountNumberParse(None, "wrong_length", len(run[0]))
    return AccountNumberParse(None, "missing")


def digits_of(text: str) -> str:
    return re.sub(r"\D", "", text)


def phone_in(text: str | None) -> str | None:
    """The mobile number in free text, as its 11 digits, or None."""
    found = PHONE_NUMBER.search(normalize(text))
    return digits_of(found[0])[-11:] if found else None
