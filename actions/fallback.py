"""Two-stage fallback: ask to rephrase once, then give the way to a person."""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.context import say
from bot.dialogue import consecutive_fallbacks

log = logging.getLogger(__name__)


class ActionFallback(Action):
    def name(self) -> str:
        return "action_fallback"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        message = tracker.latest_message
        intent = message.get("intent", {})
        log.info(
            "not understood: %d characters, best guess %s (%.2f)",
            len(message.get("text") or ""),
            intent.get("name"),
            intent.get("confidence") or 0.0,
        )
        if consecutive_fallbacks(tracker.events) >= 2:
            say(dispatcher, tracker, "fallback_95598")
        else:
            say(dispatcher, tracker, "ask_rephrase")
        return []
