"""The company's billing or outage system did not answer: the customer hears so plainly,
with a callback ticket (回电) on the spot, so that a person finds the answer and calls
back (首问负责制: nobody leaves without a number). One ticket per conversation and
matter; when no phone is known, the ticket form asks for one afterwards.
Runs in a worker thread (database calls)."""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.context import say
from actions.filing import callback_contact, file_from_conversation, reply_values
from bot import clock, complaints
from bot.dialogue import typed_phone
from bot.tickets.errors import TicketNotFound, TicketStoreUnavailable
from bot.tickets.service import set_callback_phone, tickets_db
from bot.utility import account_or_none
from bot.wording import moment

log = logging.getLogger(__name__)


def call_back(dispatcher: CollectingDispatcher, tracker: Tracker) -> list[dict[str, Any]]:
    """File (or find) the callback ticket for the request the company's system left unanswered."""
    now = clock.now()
    request = tracker.get_slot("request")
    number = tracker.get_slot("account_number")
    form = {
        **dict.fromkeys(complaints.FORM_SLOTS),
        "ticket_subject": complaints.CALLBACK,
        "escalation": None,
        "complaint_category": complaints.request_category(request),
        "callback_phone": typed_phone(tracker.events),
    }
    tracker.slots.update(form)  # filed from the slots the ticket form will hold
    verified = number is not None and tracker.get_slot("verified_account") == number
    facts = complaints.callback_facts(request, tracker.get_slot("month"), tracker.get_slot("area"), verified)
    try:
        filed, contact = file_from_conversation(tracker, complaints.CALLBACK, now, facts)
    except TicketStoreUnavailable:
        # no ticket, so no number: the apology and the 95598 line, as before
        log.exception("could not file a callback ticket")
        say(dispatcher, tracker, "service_unavailable")
        return []
    ticket = filed.ticket
    key = "filed_callback" if filed.created else "callback_existing"
    say(dispatcher, tracker, key, **reply_values(ticket, now, contact))
    events: list[dict[str, Any]] = [SlotSet("filed_ticket", ticket.number)]
    if ticket.callback_phone or not filed.created:
        return events  # a phone is known, or the customer was asked for one already
    return [*events, *(SlotSet(name, value) for name, value in form.items()), FollowupAction("ticket_form")]


def take_callback_phone(dispatcher: CollectingDispatcher, tracker: Tracker) -> list[dict[str, Any]]:
    """The ticket form asked for the callback's phone: it goes on the ticket already filed."""
    now = clock.now()
    number = tracker.get_slot("filed_ticket")
    # a 户号 given for the callback means its phone on file, if the system can say it now
    on_file = tracker.get_slot("callback_phone") == complaints.ON_FILE
    account = account_or_none(tracker.get_slot("account_number")) if on_file else None
    phone, contact = callback_contact(tracker, account)
    if phone is None:
        say(dispatcher, tracker, "callback_no_phone", number=number)
        return []
    try:
        ticket = set_callback_phone(tickets_db(), number, phone, "customer", now)
    except (TicketStoreUnavailable, TicketNotFound):
        log.exception("could not put the callback phone on %s", number)
        say(dispatcher, tracker, "callback_phone_not_saved", number=number)
        return []
    say(dispatcher, tracker, "callback_phone_noted", number=number, due=moment(ticket.sla_due_at, now), contact=contact)
    return []
