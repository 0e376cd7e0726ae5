"""A draft is checked before it is filed: a bad one is the caller's bug (InvalidDraft),
never a database error halfway through."""

from __future__ import annotations

import re
from dataclasses import replace

from bot.tickets.categories import CATEGORIES, REQUEST_TYPES
from bot.tickets.errors import InvalidDraft
from bot.tickets.records import Draft

SPEAKERS = frozenset({"customer", "bot", "agent"})
_SUBJECT = re.compile(r"[a-z][a-z0-9_]{0,63}")
_ACCOUNT = re.compile(r"\d{10}")


def checked(draft: Draft) -> Draft:
    """The draft ready to store, or InvalidDraft saying everything that is wrong with it."""
    _validate(draft)
    return _cleaned(draft)


def _validate(draft: Draft) -> None:
    problems = []
    if draft.request_type not in REQUEST_TYPES:
        problems.append(f"request_type {draft.request_type!r} is not one of {', '.join(REQUEST_TYPES)}")
    if draft.category not in CATEGORIES:
        problems.append(f"category {draft.category!r} is not one of the twelve")
    if not _SUBJECT.fullmatch(draft.subject or ""):
        problems.append(f"subject {draft.subject!r} is not a short lower-case key")
    if not draft.conversation_id or len(draft.conversation_id) > 255:
        problems.append("conversation_id must be 1 to 255 characters")
    if not draft.channel or len(draft.channel) > 32:
        problems.append("channel must be 1 to 32 characters")
    if draft.account_number is not None and not _ACCOUNT.fullmatch(draft.account_number):
        problems.append("account_number must be 10 digits")
    if draft.callback_phone is not None and len(draft.callback_phone) > 20:
        problems.append("callback_phone is longer than 20 characters")
    if not isinstance(draft.description, str):
        problems.append("description must be text")
    problems += [f"transcript speaker {line.speaker!r}" for line in draft.transcript if line.speaker not in SPEAKERS]
    if problems:
        raise InvalidDraft("; ".join(problems))


def _cleaned(draft: Draft) -> Draft:
    """Without NUL characters, which PostgreSQL text cannot hold (and nobody means to send)."""

    def clean(text: str | None) -> str | None:
        return None if text is None else str(text).replace("\x00", "")

    return replace(
        draft,
        description=clean(draft.description),
        place=clean(draft.place),
        preferred_time=clean(draft.preferred_time),
        callback_phone=clean(draft.callback_phone),
        facts={clean(k): clean(v) for k, v in draft.facts.items()},
        transcript=[replace(line, text=clean(line.text)) for line in draft.transcript],
    )
