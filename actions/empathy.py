"""express_frustration: feelings first, then the matter — or a person, when it is too much."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.context import empathize
from actions.tickets import escalate
from bot import clock
from bot.dialogue import asked_before
from bot.empathy import topic_of
from bot.frustration import FURIOUS
from bot.tickets.errors import TicketStoreUnavailable
from bot.tickets.service import add_note, conversation_tickets, tickets_db

log = logging.getLogger(__name__)


class ActionAcknowledge(Action):
    def name(self) -> str:
        return "action_acknowledge"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        topic = topic_of(tracker.latest_message.get("text"), None, tracker.get_slot("request"))
        ticket = await asyncio.to_thread(_open_ticket_of, tracker)
        if ticket is not None:
            empathize(dispatcher, tracker, topic, "next_reminded", number=ticket)
            return []
        furious = (tracker.get_slot("frustration") or 0) >= FURIOUS
        if furious or asked_before(tracker.events, {"express_frustration"}):
            empathize(dispatcher, tracker, topic, "next_escalate")
            return await asyncio.to_thread(escalate, tracker, "complaint", "frustration")
        empathize(dispatcher, tracker, topic, "next_ask_what")
        return []


def _open_ticket_of(tracker: Tracker) -> str | None:
    """The conversation's open ticket, noted as chased again; None if there is none."""
    try:
        tickets = conversation_tickets(tickets_db(), tracker.sender_id)
        if not tickets:
            return None
        add_note(tickets_db(), tickets[0].number, "bot", "客户再次表达不满，请尽快联系", clock.now())
        return tickets[0].number
    except TicketStoreUnavailable:
        log.warning("ticket store unavailable while acknowledging frustration")
        return None
