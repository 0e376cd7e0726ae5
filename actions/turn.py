"""Read every customer turn before the dialogue decides: how upset they are, and
whether a pending offer is still the question being answered.

Rasa runs this action for the custom mapping of the `frustration` slot on every
user message (action_extract_slots), forms included.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.requests import REQUESTS
from actions.trainers import note_for_trainers
from bot import clock, frustration
from bot.dialogue import asked_before, earlier_fallbacks
from bot.handoff.names import EXTERNAL_ACTIONS, HANDOFF_SLOT, RATING_SLOT
from bot.handoff.satisfaction import parse_rating
from bot.handoff.service import live_handoff, record_conversation
from bot.known_customer import vouched_account
from bot.tickets.categories import infer_category
from bot.tickets.errors import TicketStoreUnavailable
from bot.tickets.service import recent_complaint, tickets_db

log = logging.getLogger(__name__)

ANSWERS_TO_OFFER = {"affirm", "deny"}


class ActionReadTurn(Action):
    def name(self) -> str:
        return "action_read_turn"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        message = tracker.latest_message
        text = message.get("text") or ""
        intent = message.get("intent", {}).get("name")
        if intent in EXTERNAL_ACTIONS:
            return []  # an agent's or a reminder's turn, not the customer's
        events = await asyncio.to_thread(_conversation_state, tracker, text)
        await asyncio.to_thread(note_for_trainers, tracker)
        conversation = frustration.Conversation(
            fallbacks_in_a_row=earlier_fallbacks(tracker.events) + (intent == "nlu_fallback"),
            repeated_question=asked_before(tracker.events, REQUESTS),
            complained_before=await asyncio.to_thread(_complained_before, tracker, text, intent),
        )
        now_score = frustration.score(text, intent, conversation)
        # anger does not vanish in one message: it fades a step a turn
        previous = int(tracker.get_slot("frustration") or 0)
        events.append(SlotSet("frustration", float(max(now_score, previous - 1))))
        if tracker.get_slot("offer") and intent not in ANSWERS_TO_OFFER:
            events.append(SlotSet("offer", None))
        return events


def _conversation_state(tracker: Tracker, text: str) -> list[dict[str, Any]]:
    """Count the conversation on its first turn (containment); when the bot asked for a
    satisfaction score, let only a score through (anything else is a new request); take
    the 户号 a channel vouches for; and put an agent's live conversation back in charge if
    the slot was lost."""
    events = []
    if not tracker.get_slot("conversation_counted"):
        try:
            record_conversation(
                tickets_db(), tracker.sender_id, tracker.get_latest_input_channel() or "unknown", clock.now()
            )
            events.append(SlotSet("conversation_counted", True))
        except TicketStoreUnavailable:
            log.warning("could not count the conversation")
    if tracker.get_slot(RATING_SLOT) and parse_rating(text) is None:
        events.append(SlotSet(RATING_SLOT, None))
    known = vouched_account(tracker.latest_message.get("metadata"))
    if known and tracker.get_slot("verified_account") != known:
        # the website's signed-in customer, a WeChat follower bound to a 户号: no questions
        events += [SlotSet("account_number", known), SlotSet("verified_account", known)]
    if not tracker.get_slot(HANDOFF_SLOT):
        # the database decides who has the conversation: a new session (after two idle
        # hours) forgets the slot, but an agent still has the customer
        try:
            live = live_handoff(tickets_db(), tracker.sender_id)
        except TicketStoreUnavailable:
            live = None
        if live is not None:
            events.append(SlotSet(HANDOFF_SLOT, live.ticket_number))
    return events


def _complained_before(tracker: Tracker, text: str, intent: str | None) -> bool:
    """Has this account (or this conversation) already filed about the same thing this month?"""
    category = infer_category(text)
    if category is None:
        return False
    try:
        return recent_complaint(
            tickets_db(),
            tracker.get_slot("account_number") or None,
            category,
            clock.now(),
            conversation_id=tracker.sender_id,
        )
    except TicketStoreUnavailable:
        log.warning("ticket store unavailable while reading the turn")
        return False
