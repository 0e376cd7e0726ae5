"""户号 (account number) recognition in what a customer typed."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.text import normalize

ACCOUNT_DIGITS = 10
_EXACT = re.compile(r"(?<!\d)\d{10}(?!\d)")
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
    exact = _EXACT.search(text)
    if exact:
        return AccountNumberParse(exact[0], None, ACCOUNT_DIGITS)
    mixed = _MIXED.search(text)
    if mixed:
        return AccountNumberParse(None, "has_letters", sum(c.isdigit() for c in mixed[0]))
    run = _DIGIT_RUN.search(text)
    if run:
        return AccountNumberParse(None, "wrong_length", len(run[0]))
    return AccountNumberParse(None, "missing")
