"""Two-stage fallback: ask to rephrase once; the second time, a person takes over."""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction
from rasa_sdk.executor import CollectingDispatcher

from actions.context import say
from actions.tickets import escalate
from actions.trainers import note_for_trainers
from bot.dialogue import consecutive_fallbacks, customer_texts
from bot.text import is_meaningful

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
        note_for_trainers(tracker, "fallback")
        if intent.get("name") != "nlu_fallback":
            # understood, but no rule knows what comes next: say so once and listen,
            # rather than letting the policy predict this fallback again and again
            log.warning("dialogue dead end after intent %s", intent.get("name"))
            say(dispatcher, tracker, "ask_rephrase")
            return [FollowupAction("action_listen")]
        if tracker.active_loop.get("name"):
            # the form asks its question again right after this
            say(dispatcher, tracker, "form_not_understood")
            return []
        fallbacks = consecutive_fallbacks(tracker.events)
        if fallbacks < 2:
            say(dispatcher, tracker, "ask_rephrase")
            return []
        # emoji and punctuation alone are not a question a person could answer
        if any(is_meaningful(text) for text in customer_texts(tracker.events)[-fallbacks:]):
            say(dispatcher, tracker, "fallback_handoff")
            return escalate(tracker, "handoff", "fallbacks")
        say(dispatcher, tracker, "fallback_again")
        return []
