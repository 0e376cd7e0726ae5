"""What the customer asked for, remembered for follow-ups, and the answer once the form is done."""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import answers
from actions.context import latest_entity, say
from bot.outages import match_area
from bot.utility import UtilityUnavailable, utility_data

log = logging.getLogger(__name__)

REQUESTS = ("query_bill", "bill_too_high", "meter_dispute", "query_outage")
NEEDS_IDENTITY = ("query_bill", "bill_too_high", "meter_dispute")


class ActionSetRequest(Action):
    """Remembers the request; a bare follow-up (inform) continues the last one.
    The month is the one named now (none means the latest bill); the area is the
    last one the customer named in the conversation."""

    def name(self) -> str:
        return "action_set_request"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        intent = tracker.latest_message.get("intent", {}).get("name")
        request = intent if intent in REQUESTS else tracker.get_slot("request")
        area = latest_entity(tracker, "address")
        if area is None:
            try:
                area = match_area(utility_data(), tracker.latest_message.get("text"))
            except UtilityUnavailable:
                area = None
        return [
            SlotSet("request", request),
            SlotSet("month", latest_entity(tracker, "month")),
            SlotSet("area", area or tracker.get_slot("area")),
        ]


class ActionFulfilRequest(Action):
    def name(self) -> str:
        return "action_fulfil_request"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        request = tracker.get_slot("request")
        # the proof was used; a new account or a new conversation asks again
        events: list[dict[str, Any]] = [SlotSet("identity_proof", None)]
        if request is None:
            say(dispatcher, tracker, "what_service")
            return events
        if request in NEEDS_IDENTITY:
            if tracker.get_slot("identity_locked"):
                say(dispatcher, tracker, "identity_locked")
                return events
            if tracker.get_slot("verified_account") != tracker.get_slot("account_number"):
                # the check could not run: the company's system did not answer
                say(dispatcher, tracker, "service_unavailable")
                return events
        try:
            answers.ANSWERS[request](dispatcher, tracker, utility_data())
        except UtilityUnavailable as error:
            log.warning("company system unavailable while answering %s: %s", request, error)
            say(dispatcher, tracker, "service_unavailable")
        return events
