"""Messages the bot was unsure of, or fell back on, go to the trainers' inbox."""

from __future__ import annotations

import logging

from rasa_sdk import Tracker

from bot import clock
from bot.dialogue import person_names
from bot.handoff.names import HANDOFF_SLOT
from bot.text import is_meaningful
from bot.tickets.errors import TicketStoreUnavailable
from bot.tickets.service import tickets_db
from bot.training import inbox

log = logging.getLogger(__name__)


def note_for_trainers(tracker: Tracker, reason: str | None = None) -> None:
    """Collect the customer's latest message if the NLU was unsure of it (or `reason`
    says why anyway). Not while an agent has the conversation, nor the identity answer:
    neither is the bot's to understand."""
    intent = tracker.latest_message.get("intent") or {}
    reason = reason or inbox.reason_for(intent.get("name"), intent.get("confidence"))
    if reason is None or tracker.get_slot(HANDOFF_SLOT) or tracker.get_slot("requested_slot") == "identity_proof":
        return
    user = next((e for e in reversed(tracker.events) if e.get("event") == "user"), None)
    text = (user or {}).get("text") or ""  # as typed: the NLU's copy is normalised and cut
    if user is None or not is_meaningful(text):
        return
    predicted, confidence = inbox.best_guess(
        intent.get("name"), intent.get("confidence"), tracker.latest_message.get("intent_ranking") or []
    )
    try:
        inbox.collect(
            tickets_db(),
            text,
            key=inbox.sighting_key(tracker.sender_id, str(user.get("message_id") or user.get("timestamp"))),
            reason=reason,
            channel=tracker.get_latest_input_channel() or "unknown",
            moment=clock.now(),
            predicted_intent=predicted,
            confidence=confidence,
            names=person_names(tracker.events),
        )
    except TicketStoreUnavailable:
        log.warning("could not put a message in the trainers' inbox")
