"""Journeys that end in a ticket: open one, ask what it still lacks, file it, say the
number and the deadline in plain words (首问负责制: the customer always leaves with both)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.callback import take_callback_phone
from actions.context import empathize, intent_of, latest_entity, say, upset
from actions.filing import file_and_tell
from bot import accounts, clock, complaints
from bot.accounts import phone_in
from bot.dialogue import bot_texts, typed_phone
from bot.empathy import topic_of
from bot.handoff.service import in_service_hours
from bot.masking import mask_account, mask_phone
from bot.outages import known_area_in
from bot.replies import catalogue, render
from bot.text import is_meaningful
from bot.tickets.categories import CATEGORIES
from bot.tickets.errors import TicketStoreUnavailable
from bot.tickets.records import Ticket
from bot.tickets.service import conversation_tickets, tickets_db
from bot.utility import UtilityUnavailable, account_or_none, utility_data

log = logging.getLogger(__name__)

ON_FILE, NO_PHONE = complaints.ON_FILE, complaints.NO_PHONE  # also "the place on file" for the 户号
REJECTED = "rejected"  # the customer said the guessed category is not it
INTENT_SUBJECTS = {
    "complain": "complaint",
    "request_human": "handoff",
    "report_hazard": "hazard",
    "report_power_quality": "power_quality",
}


def open_ticket(tracker: Tracker, subject: str, escalation: str | None = None) -> list[dict[str, Any]]:
    """Slots that start the ticket form for `subject`, with what the message already says."""
    text = tracker.latest_message.get("text") or ""
    slots: dict[str, Any] = dict.fromkeys(complaints.FORM_SLOTS)
    slots.update(ticket_subject=subject, escalation=escalation)
    if subject == "complaint" and complaints.has_substance(text):
        slots.update(complaint_text=text, category_guess=complaints.category_in(text))
    # a phone the customer already typed in this conversation is not asked again
    phone = typed_phone(tracker.events)
    if phone:
        slots["callback_phone"] = phone
    existing = _open_ticket_like(tracker.sender_id, subject, slots["category_guess"])
    if existing is not None:
        # the same matter again (a resent message): fill the form from the ticket it
        # already has, so filing returns that ticket instead of asking everything again
        slots.update(
            complaint_text=slots["complaint_text"] or existing.description,
            complaint_category=existing.category,
            callback_phone=slots["callback_phone"] or existing.callback_phone or NO_PHONE,
            place=existing.place,
            preferred_time=existing.preferred_time,
        )
        return [SlotSet(name, value) for name, value in slots.items()]
    if subject in ("hazard", "power_quality", "fault"):
        slots["place"] = (
            latest_entity(tracker, "address")
            or _known_area(text)
            # the address on file is never said back: hazard replies repeat the place
            or (_address_of(tracker.get_slot("account_number")) if subject != "hazard" else None)
            or tracker.get_slot("area")
        )
    return [SlotSet(name, value) for name, value in slots.items()]


def escalate(tracker: Tracker, subject: str, reason: str) -> list[dict[str, Any]]:
    """Hand the conversation on: the ticket form runs next, whatever the rules say."""
    return [*open_ticket(tracker, subject, reason), FollowupAction("ticket_form")]


class ActionOpenTicket(Action):
    """complain / request_human / report_hazard / report_power_quality start here."""

    def name(self) -> str:
        return "action_open_ticket"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        intent = intent_of(tracker)
        subject = INTENT_SUBJECTS.get(intent or "", "complaint")
        text = tracker.latest_message.get("text")
        if subject == "complaint":
            empathize(dispatcher, tracker, topic_of(text, None, tracker.get_slot("request")), "next_record_complaint")
        elif subject == "power_quality":
            empathize(dispatcher, tracker, "power_quality", "next_file_repair")
        elif subject == "handoff":
            if upset(tracker):
                empathize(dispatcher, tracker, topic_of(text, None, tracker.get_slot("request")), "next_handoff")
            else:
                say(dispatcher, tracker, "handoff_ack")
        reason = "request_human" if subject == "handoff" else None
        return await asyncio.to_thread(open_ticket, tracker, subject, reason)


class ValidateTicketForm(FormValidationAction):
    def name(self) -> str:
        return "validate_ticket_form"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[dict[str, Any]]:
        asking = tracker.get_slot("requested_slot")
        text = tracker.latest_message.get("text")
        if asking and complaints.is_stopping(text, asking):
            if tracker.get_slot("ticket_subject") == complaints.CALLBACK:
                # the callback is filed already: leaving only declines the phone
                return [SlotSet("callback_phone", NO_PHONE), SlotSet("requested_slot", None)]
            # "算了，不投诉了": the form ends and action_file_ticket says goodbye to it
            return [SlotSet("ticket_subject", None), SlotSet("requested_slot", None)]
        events: list[dict[str, Any]] = []
        if asking and intent_of(tracker) == "request_human" and tracker.get_slot("ticket_subject") != "handoff":
            # a person, at once: what was said so far stays on the ticket
            events += [SlotSet("ticket_subject", "handoff"), SlotSet("escalation", "request_human")]
            tracker.slots.update(ticket_subject="handoff", escalation="request_human")
        return events + await super().run(dispatcher, tracker, domain)

    async def required_slots(
        self, domain_slots: list[str], dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[str]:
        subject = tracker.get_slot("ticket_subject")
        if subject == "handoff" and in_service_hours(clock.now()):
            return []  # a person answers here and now; a phone is asked only for a callback
        number = tracker.get_slot("account_number")
        usable = number and complaints.phone_on_file_usable(subject, tracker.get_slot("escalation"))
        # the phone on file counts only when the company's system can give it
        known_contact = bool(usable) and await asyncio.to_thread(account_or_none, number) is not None
        return complaints.required(subject, contact_known=known_contact)

    async def extract_complaint_text(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = tracker.latest_message.get("text") or ""
        if tracker.get_slot("requested_slot") != "complaint_text" or not is_meaningful(text):
            return {}
        return {"complaint_text": text}

    # rasa_sdk keeps only the form's own slots from extract_* methods; slots that go
    # with a value (the category guess, the account behind a phone) are set in validate_*

    async def validate_complaint_text(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return {"complaint_text": value, "category_guess": complaints.category_in(value)}

    async def extract_complaint_category(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if tracker.get_slot("requested_slot") != "complaint_category":
            return {}
        intent = intent_of(tracker)
        if intent == "affirm" and tracker.get_slot("category_guess"):
            return {"complaint_category": tracker.get_slot("category_guess")}
        chosen = complaints.category_in(tracker.latest_message.get("text"))
        if chosen:
            return {"complaint_category": chosen}
        if intent == "deny":
            # not that one: the next question lists the categories
            return {"complaint_category": REJECTED}
        return {}

    async def validate_complaint_category(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if value == REJECTED:
            return {"complaint_category": None, "category_guess": None}
        return {"complaint_category": value}

    async def extract_callback_phone(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = tracker.latest_message.get("text") or ""
        phone = phone_in(text)
        if phone:
            return {"callback_phone": phone}
        if tracker.get_slot("requested_slot") != "callback_phone":
            return {}
        number = accounts.parse(text).number
        if number:
            return {"callback_phone": f"{ON_FILE}:{number}"}
        on_file_offered = _phone_on_file_offered(tracker)
        if on_file_offered and intent_of(tracker) == "affirm":
            return {"callback_phone": f"{ON_FILE}:{tracker.get_slot('account_number')}"}
        if complaints.declines_phone(text) or intent_of(tracker) == "deny":
            plain_asked = any(t in bot_texts(tracker.events) for t in catalogue()["ask_callback_phone"])
            # "not that number": ask for another one once; then no phone at all
            return {"callback_phone": None if on_file_offered and not plain_asked else NO_PHONE}
        if any(c.isdigit() for c in text):
            say(dispatcher, tracker, "phone_not_understood")
        return {}

    async def validate_callback_phone(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if isinstance(value, str) and value.startswith(f"{ON_FILE}:"):
            number = value.split(":", 1)[1]
            account = await asyncio.to_thread(account_or_none, number)
            if account is None:
                say(dispatcher, tracker, "account_not_found", account=mask_account(number))
                return {"callback_phone": None}
            return {"callback_phone": ON_FILE, "account_number": number}
        return {"callback_phone": value}

    async def extract_place(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = tracker.latest_message.get("text") or ""
        place = latest_entity(tracker, "address")
        if tracker.get_slot("requested_slot") == "place":
            number = accounts.parse(text).number if tracker.get_slot("ticket_subject") != "hazard" else None
            if number:
                return {"place": f"{ON_FILE}:{number}"}
            # the customer's own words are the most precise place ("光明路和解放路路口，公交站旁")
            place = text if is_meaningful(text) else None
        return {"place": place} if place else {}

    async def validate_place(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if isinstance(value, str) and value.startswith(f"{ON_FILE}:"):
            number = value.split(":", 1)[1]
            address = await asyncio.to_thread(_address_of, number)
            if address is None:
                say(dispatcher, tracker, "account_not_found", account=mask_account(number))
                return {"place": None}
            # the address on file goes on the ticket; it is not said back
            return {"place": address, "account_number": number}
        return {"place": value}

    async def extract_preferred_time(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = tracker.latest_message.get("text") or ""
        if tracker.get_slot("requested_slot") != "preferred_time" or not is_meaningful(text):
            return {}
        return {"preferred_time": text}


class ActionAskComplaintText(Action):
    def name(self) -> str:
        return "action_ask_complaint_text"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        say(dispatcher, tracker, "ask_complaint_text")
        return []


class ActionAskComplaintCategory(Action):
    def name(self) -> str:
        return "action_ask_complaint_category"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        guess = tracker.get_slot("category_guess")
        if guess:
            say(dispatcher, tracker, "confirm_category", category=CATEGORIES[guess])
        else:
            buttons = [{"title": name, "payload": name} for name in CATEGORIES.values()]
            dispatcher.utter_message(text=render("choose_category"), buttons=buttons)
        return []


class ActionAskCallbackPhone(Action):
    def name(self) -> str:
        return "action_ask_callback_phone"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        number = tracker.get_slot("account_number")
        subject, escalation = tracker.get_slot("ticket_subject"), tracker.get_slot("escalation")
        confirm = number and complaints.phone_on_file_usable(subject, escalation)
        if confirm and not _phone_on_file_offered(tracker):
            account = await asyncio.to_thread(account_or_none, number)
            if account is not None:
                if tracker.get_slot("verified_account") == number:
                    say(dispatcher, tracker, "confirm_phone_on_file", phone=mask_phone(account.phone))
                else:
                    # the last four digits are the identity proof: not shown before the check
                    say(dispatcher, tracker, "confirm_phone_on_file_unverified")
                return []
        say(dispatcher, tracker, "ask_callback_phone")
        return []


class ActionAskPlace(Action):
    def name(self) -> str:
        return "action_ask_place"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        hazard = tracker.get_slot("ticket_subject") == "hazard"
        say(dispatcher, tracker, "ask_hazard_place" if hazard else "ask_place")
        return []


class ActionAskPreferredTime(Action):
    def name(self) -> str:
        return "action_ask_preferred_time"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        say(dispatcher, tracker, "ask_preferred_time")
        return []


class ActionFileTicket(Action):
    """The ticket form is done: file the ticket, or let the customer go if they left."""

    def name(self) -> str:
        return "action_file_ticket"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        clear = [SlotSet(name, None) for name in (*complaints.FORM_SLOTS, "ticket_subject", "escalation")]
        subject = tracker.get_slot("ticket_subject")
        if subject is None:
            say(dispatcher, tracker, "ticket_form_left")
            return clear
        if subject == complaints.CALLBACK:
            return clear + await asyncio.to_thread(take_callback_phone, dispatcher, tracker)
        events = await asyncio.to_thread(file_and_tell, dispatcher, tracker, subject)
        return clear + events


class ActionAcceptOffer(Action):
    """Yes to what the bot offered after an answer (a meter verification, a fault report)."""

    def name(self) -> str:
        return "action_accept_offer"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        subject = tracker.get_slot("offer")
        return [SlotSet("offer", None), *await asyncio.to_thread(open_ticket, tracker, subject)]


class ActionDeclineOffer(Action):
    def name(self) -> str:
        return "action_decline_offer"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        say(dispatcher, tracker, f"offer_declined_{tracker.get_slot('offer')}")
        return [SlotSet("offer", None)]


def _open_ticket_like(conversation_id: str, subject: str, category: str | None) -> Ticket | None:
    """This conversation's open ticket on the same matter, if there is one."""
    try:
        tickets = conversation_tickets(tickets_db(), conversation_id)
    except TicketStoreUnavailable:
        return None
    for ticket in tickets:
        if ticket.subject == subject and (subject != "complaint" or ticket.category == category):
            return ticket
    return None


def _phone_on_file_offered(tracker: Tracker) -> bool:
    """Did the bot already offer to call the phone on file in this conversation?"""
    offers = catalogue()["confirm_phone_on_file"] + catalogue()["confirm_phone_on_file_unverified"]
    prefixes = [offer.split("{")[0] for offer in offers]
    return any(text.startswith(p) for text in bot_texts(tracker.events) for p in prefixes)


def _address_of(number: str | None) -> str | None:
    account = account_or_none(number)
    return account.address if account else None


def _known_area(text: str) -> str | None:
    try:
        return known_area_in(utility_data(), text)
    except UtilityUnavailable:
        return None
