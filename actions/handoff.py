"""Live handoff: the bot hands the conversation to an agent, stays silent while the agent
has it, carries the agent's words to the customer, and takes it back with its context.

bot/handoff/policy.py decides when these run; bot/handoff/service.py keeps the state.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ReminderScheduled, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.context import say
from bot import clock
from bot.config import load_settings
from bot.dialogue import customer_texts
from bot.handoff import service
from bot.handoff.names import HANDOFF_SLOT, RATING_SLOT
from bot.handoff.satisfaction import parse_rating
from bot.masking import mask_text
from bot.replies import render
from bot.tickets.errors import TicketStoreUnavailable
from bot.tickets.records import Ticket
from bot.tickets.service import find_ticket, record_satisfaction, tickets_db
from bot.wording import duration, moment

log = logging.getLogger(__name__)

LOW_SATISFACTION = 2


def hand_over(dispatcher: CollectingDispatcher, tracker: Tracker, ticket: Ticket, contact: str) -> list[dict[str, Any]]:
    """The handoff ticket is filed: queue the conversation (or, outside the online hours,
    promise the callback) and tell the customer honestly what happens now."""
    now = clock.now()
    channel = tracker.get_latest_input_channel() or "unknown"
    start = service.start(tickets_db(), ticket.number, tracker.sender_id, channel, tracker.get_slot("escalation"), now)
    due = moment(start.ticket.sla_due_at, now)
    if not start.handoff.is_live:
        hours = service.service_hours()
        span = f"{hours[0]:%H:%M}–{hours[1]:%H:%M}" if hours else ""
        within = duration(ticket.sla_due_at - ticket.created_at)
        values = {"number": ticket.number, "hours": span, "within": within, "due": due, "contact": contact}
        say(dispatcher, tracker, "handoff_callback", **values)
        return []
    if start.wait_minutes is not None:
        wait = render("wait_estimate", minutes=start.wait_minutes)
    else:
        wait = render("wait_unknown", due=due)
    if start.position == 1:
        place = render("queue_next", wait=wait)
    else:
        place = render("queue_behind", ahead=start.position - 1, wait=wait)
    text = render("handoff_live", number=ticket.number, queue=place)
    dispatcher.utter_message(text=text)
    service.bot_said(tickets_db(), tracker.sender_id, text, now)
    remind_at = datetime.now(timezone.utc) + timedelta(seconds=load_settings().handoff_reminder_seconds)
    return [
        SlotSet(HANDOFF_SLOT, ticket.number),
        ReminderScheduled(
            "EXTERNAL_handoff_reminder",
            trigger_date_time=remind_at,
            name=f"handoff-{start.handoff.id}",
            kill_on_user_message=False,
        ),
    ]


class ActionRelayToAgent(Action):
    """A customer's message while an agent has the conversation: kept for the agent, and
    the bot says nothing."""

    def name(self) -> str:
        return "action_relay_to_agent"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        # the customer's own words, as typed: the NLU's copy is normalised and cut at 300 characters
        typed = customer_texts(tracker.events)
        text = typed[-1] if typed else tracker.latest_message.get("text") or ""
        mood = int(tracker.get_slot("frustration") or 0)
        try:
            kept = await asyncio.to_thread(
                service.customer_said, tickets_db(), tracker.sender_id, mask_text(text), clock.now(), mood
            )
        except TicketStoreUnavailable:
            log.exception("could not keep a customer's message for the agent")
            say(dispatcher, tracker, "relay_failed")  # the agent still has the conversation
            return []
        if kept is None:
            # the handoff ended without the bot being told (e.g. Rasa was unreachable then)
            say(dispatcher, tracker, "handoff_over")
            return [SlotSet(HANDOFF_SLOT, None)]
        return []


class ActionAgentReply(Action):
    """An agent wrote to the customer (EXTERNAL_agent_reply): say every line still waiting."""

    def name(self) -> str:
        return "action_agent_reply"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        sessions = tickets_db()
        pending = await asyncio.to_thread(service.undelivered, sessions, tracker.sender_id)
        prefix = render("agent_prefix")
        for message in pending:
            dispatcher.utter_message(text=f"{prefix}{message.text}")
            await asyncio.to_thread(service.delivered, sessions, message.id, clock.now())
        return []


class ActionHandBack(Action):
    """The agent handed the conversation back: the bot resumes, knowing the ticket and who
    the customer is (the slots are kept, so nothing is asked again)."""

    def name(self) -> str:
        return "action_hand_back"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        number = tracker.get_slot(HANDOFF_SLOT) or tracker.get_slot("filed_ticket")
        say(dispatcher, tracker, "handed_back", number=number)
        return [SlotSet(HANDOFF_SLOT, None), SlotSet("filed_ticket", number)]


class ActionHandoffResolved(Action):
    """The agent resolved the ticket: the customer reads the resolution and is asked for a score."""

    def name(self) -> str:
        return "action_handoff_resolved"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        number = tracker.get_slot(HANDOFF_SLOT) or tracker.get_slot("filed_ticket")
        ticket = await asyncio.to_thread(find_ticket, tickets_db(), number)
        if ticket is None or ticket.status != "resolved":
            return []
        dispatcher.utter_message(text=render("handoff_resolved", number=ticket.number, resolution=ticket.resolution))
        buttons = [{"title": f"{score}分", "payload": str(score)} for score in range(5, 0, -1)]
        dispatcher.utter_message(text=render("ask_satisfaction"), buttons=buttons)
        return [SlotSet(HANDOFF_SLOT, None), SlotSet(RATING_SLOT, ticket.number), SlotSet("filed_ticket", number)]


class ActionHandoffReminder(Action):
    """Nobody has picked the customer up yet: say once that someone is coming."""

    def name(self) -> str:
        return "action_handoff_reminder"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        number = tracker.get_slot(HANDOFF_SLOT)
        if not number:
            return []
        now = clock.now()
        if not await asyncio.to_thread(service.take_reminder, tickets_db(), tracker.sender_id, now):
            return []
        text = render("handoff_reminder", number=number)
        dispatcher.utter_message(text=text)
        await asyncio.to_thread(service.bot_said, tickets_db(), tracker.sender_id, text, now)
        return []


class ActionRecordSatisfaction(Action):
    """The customer's score for the resolved ticket (action_read_turn lets only a rating through)."""

    def name(self) -> str:
        return "action_record_satisfaction"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        number = tracker.get_slot(RATING_SLOT)
        rating = parse_rating(tracker.latest_message.get("text"))
        if rating is None:
            return [SlotSet(RATING_SLOT, None)]
        score, comment = rating
        now = clock.now()
        ticket = await asyncio.to_thread(
            record_satisfaction, tickets_db(), number, score, mask_text(comment) if comment else None, now
        )
        if score <= LOW_SATISFACTION:
            say(dispatcher, tracker, "satisfaction_low", score=score, due=moment(ticket.return_visit_due_at, now))
        else:
            say(dispatcher, tracker, "satisfaction_thanks", score=score)
        return [SlotSet(RATING_SLOT, None)]
