"""What every action needs from the tracker, said once."""

from __future__ import annotations

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot.dialogue import bot_texts
from bot.replies import render


def latest_entity(tracker: Tracker, entity: str) -> str | None:
    """The entity's value in the customer's latest message only. Where extractors found
    several ("2020年", "1月" and "2020年1月"), the longest is the most specific."""
    return max(tracker.get_latest_entity_values(entity), key=len, default=None)


def say(dispatcher: CollectingDispatcher, tracker: Tracker, key: str, **values: object) -> None:
    """Send a reply from bot/replies.yml, preferring a variant not yet said in this conversation."""
    dispatcher.utter_message(text=render(key, avoid=bot_texts(tracker.events), **values))
