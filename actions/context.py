"""What every action needs from the tracker, said once."""

from __future__ import annotations

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot.dialogue import bot_texts
from bot.empathy import response_name
from bot.frustration import UPSET
from bot.replies import render, render_scripted


def latest_entity(tracker: Tracker, entity: str) -> str | None:
    """The entity's value in the customer's latest message only. Where extractors found
    several ("2020年", "1月" and "2020年1月"), the longest is the most specific."""
    return max(tracker.get_latest_entity_values(entity), key=len, default=None)


def say(dispatcher: CollectingDispatcher, tracker: Tracker, key: str, **values: object) -> None:
    """Send a reply from bot/replies.yml, preferring a variant not yet said in this conversation."""
    dispatcher.utter_message(text=render(key, avoid=bot_texts(tracker.events), **values))


def empathize(dispatcher: CollectingDispatcher, tracker: Tracker, topic: str, next_key: str, **values: object) -> None:
    """Feelings first: the scripted empathy line for the topic, ending with what the bot does now."""
    said = bot_texts(tracker.events)
    next_step = render(next_key, avoid=said, **values)
    area = tracker.get_slot("area")
    about = f"{area}一带" if area else "您那边"
    dispatcher.utter_message(text=render_scripted(response_name(topic), avoid=said, next=next_step, about=about))


def upset(tracker: Tracker) -> bool:
    return (tracker.get_slot("frustration") or 0) >= UPSET


def intent_of(tracker: Tracker) -> str | None:
    return tracker.latest_message.get("intent", {}).get("name")
