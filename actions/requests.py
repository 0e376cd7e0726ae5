"""What the customer asked for, remembered for follow-ups, and the answer once the form is done."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import answers
from actions.callback import call_back
from actions.context import empathize, latest_entity, say, upset
from actions.tickets import escalate
from bot.empathy import topic_of
from bot.frustration import FURIOUS
from bot.identity import NEEDS_IDENTITY
from bot.outages import known_area_in
from bot.utility import UtilityUnavailable, utility_data

log = logging.getLogger(__name__)

REQUESTS = ("query_bill", "bill_too_high", "meter_dispute", "query_outage", "payment_not_restored", "query_ticket")
# paid and still in the dark is always a grievance: it is acknowledged before anything is asked
GRIEVANCES = ("payment_not_restored",)


class ActionSetRequest(Action):
    """Remembers the request. A bare follow-up (inform) continues the last request only
    when it carries something that request can use ("那8月呢", another 户号, a place);
    a ticket number asks for that ticket. The month is the one named now (none means
    the latest bill); the area is the one named now, else the last one named, unless a
    户号 now says where the customer is. An upset customer hears empathy first."""

    def name(self) -> str:
        return "action_set_request"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        intent = tracker.latest_message.get("intent", {}).get("name")
        month = latest_entity(tracker, "month")
        account = latest_entity(tracker, "account_number")
        place = latest_entity(tracker, "address")
        known = await asyncio.to_thread(known_area_in, utility_data(), place or tracker.latest_message.get("text"))
        area = None if account else known or place or tracker.get_slot("area")

        if intent in REQUESTS:
            request = intent
        elif latest_entity(tracker, "ticket_id"):
            request = "query_ticket"
        else:
            request = tracker.get_slot("request")
            useful = account or (month if request in NEEDS_IDENTITY else known or place)
            if not useful:
                request = None
        if request and (intent in GRIEVANCES or upset(tracker)):
            text = tracker.latest_message.get("text")
            empathize(dispatcher, tracker, topic_of(text, intent, request), "next_check")
        return [SlotSet("request", request), SlotSet("month", month), SlotSet("area", area)]


class ActionFulfilRequest(Action):
    def name(self) -> str:
        return "action_fulfil_request"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        request = tracker.get_slot("request")
        number = tracker.get_slot("account_number")
        # the proof was used; a new account or a new conversation asks again
        events: list[dict[str, Any]] = [SlotSet("identity_proof", None)]
        if request is None:
            say(dispatcher, tracker, "what_service")
            return events
        # a ticket asked for by number, or this conversation's own, needs no 户号:
        # answer_ticket shows a ticket only to its owner
        by_ticket = request == "query_ticket" and (tracker.get_slot("ticket_number") or not number)
        if request in NEEDS_IDENTITY and not by_ticket:
            if number and tracker.get_slot("locked_account") == number:
                # three failed checks: a person verifies the customer instead
                say(dispatcher, tracker, "identity_locked")
                return events + await asyncio.to_thread(escalate, tracker, "handoff", "identity_locked")
            if not number or tracker.get_slot("verified_account") != number:
                # the check could not run: the company's system did not answer
                return events + await asyncio.to_thread(call_back, dispatcher, tracker)
        try:
            events += await asyncio.to_thread(answers.ANSWERS[request], dispatcher, tracker, utility_data())
        except UtilityUnavailable as error:
            log.warning("company system unavailable while answering %s: %s", request, error)
            return events + await asyncio.to_thread(call_back, dispatcher, tracker)
        except Exception:
            # never leave the customer without an answer
            log.exception("answering %s failed", request)
            say(dispatcher, tracker, "service_unavailable")
        furious = (tracker.get_slot("frustration") or 0) >= FURIOUS
        offered = any(e.get("name") == "offer" for e in events)
        if furious and request != "query_ticket" and not offered and not tracker.get_slot("filed_ticket"):
            # answered, and still furious: the matter is filed so a person follows it up
            say(dispatcher, tracker, "escalate_after_answer")
            events += await asyncio.to_thread(escalate, tracker, "complaint", "frustration")
        return events
