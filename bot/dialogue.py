"""Facts about the conversation so far, read from the tracker's events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
