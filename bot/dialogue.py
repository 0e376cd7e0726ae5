"""Facts about the conversation so far, read from the tracker's events."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from bot import clock
from bot.accounts import phone_in
from bot.masking import mask_names
from bot.text import normalize
from bot.tickets.records import TranscriptLine

FALLBACK_ACTION = "action_fallback"


def consecutive_fallbacks(events: Sequence[dict[str, Any]]) -> int:
    """How many of the customer's latest turns in a row ended in the fallback,
    the turn being answered now included (it is the one falling back)."""
    turns: list[list[str]] = []
    for event in events:
        if event.get("event") == "user":
            turns.append([])
        elif event.get("event") == "action" and turns:
            turns[-1].append(event.get("name") or "")
    count = 1
    for actions in reversed(turns[:-1]):
        if FALLBACK_ACTION not in actions:
            break
        count += 1
    return count


def bot_texts(events: Sequence[dict[str, Any]]) -> list[str]:
    """Everything the bot has said in this conversation."""
    return [e["text"] for e in events if e.get("event") == "bot" and e.get("text")]


def customer_texts(events: Sequence[dict[str, Any]]) -> list[str]:
    """Everything the customer has typed in this conversation, oldest first: not the
    intents triggered from outside (an agent's reply, a reminder, the recovery worker's
    handoff), which Rasa keeps as user events marked `is_external`."""
    return [e["text"] for e in events if e.get("event") == "user" and e.get("text") and not _external(e)]


def _external(event: dict[str, Any]) -> bool:
    metadata = event.get("metadata")
    return isinstance(metadata, dict) and bool(metadata.get("is_external"))


def typed_phone(events: Sequence[dict[str, Any]]) -> str | None:
    """The mobile number the customer typed last in this conversation, if any."""
    return next(filter(None, map(phone_in, reversed(customer_texts(events)))), None)


def earlier_fallbacks(events: Sequence[dict[str, Any]]) -> int:
    """How many turns in a row before the current one ended in the fallback."""
    return consecutive_fallbacks(events) - 1


def asked_before(events: Sequence[dict[str, Any]], intents: Iterable[str]) -> bool:
    """True when an earlier turn of the customer's had the same request, or the same words."""
    users = [e for e in events if e.get("event") == "user"]
    if len(users) < 2:
        return False
    current, earlier = users[-1], users[:-1]
    intent = (current.get("parse_data") or {}).get("intent", {}).get("name")
    text = normalize(current.get("text"))
    for event in earlier:
        if text and normalize(event.get("text")) == text:
            return True
        if intent in intents and (event.get("parse_data") or {}).get("intent", {}).get("name") == intent:
            return True
    return False


def person_names(events: Sequence[dict[str, Any]]) -> set[str]:
    """Every name the NLU found in the customer's messages (the identity answer, say)."""
    return {
        entity["value"]
        for e in events
        if e.get("event") == "user"
        for entity in (e.get("parse_data") or {}).get("entities", [])
        if entity.get("entity") == "person_name" and isinstance(entity.get("value"), str)
    }


def transcript(events: Sequence[dict[str, Any]], names: Iterable[str] = ()) -> list[TranscriptLine]:
    """The conversation as the customer saw it, for the ticket, with the given names masked
    (the ticket service masks phones and account numbers when it stores it)."""
    names = set(names) | person_names(events)
    lines = []
    for event in events:
        speaker = {"user": "customer", "bot": "bot"}.get(event.get("event") or "")
        if speaker and event.get("text"):
            at = clock.from_timestamp(event["timestamp"]) if event.get("timestamp") else None
            lines.append(TranscriptLine(speaker, mask_names(event["text"], names), at))
    return lines


def highest(events: Sequence[dict[str, Any]], slot: str) -> float:
    """The highest value a numeric slot has had in this conversation (0 if never set)."""
    values = [e.get("value") for e in events if e.get("event") == "slot" and e.get("name") == slot]
    return max((float(v) for v in values if v is not None), default=0.0)
