"""File the ticket a journey gathered and tell the customer its number, deadline and
who will call. Runs in a worker thread (database and company-system calls)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.context import say
from actions.handoff import hand_over
from bot import accounts, clock, complaints
from bot.dialogue import customer_texts, highest, person_names, transcript
from bot.masking import mask_names, mask_phone, mask_text
from bot.replies import render
from bot.tickets.categories import STATUSES
from bot.tickets.errors import TicketStoreUnavailable
from bot.tickets.records import Draft, Filed, Ticket
from bot.tickets.service import add_note, file_ticket, tickets_db
from bot.utility import account_or_none
from bot.utility.records import Account
from bot.wording import duration, moment

log = logging.getLogger(__name__)


def file_and_tell(
    dispatcher: CollectingDispatcher, tracker: Tracker, subject: str, facts: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    now = clock.now()
    try:
        filed, contact = file_from_conversation(tracker, subject, now, facts)
    except TicketStoreUnavailable:
        log.exception("could not file a %s ticket", subject)
        say(dispatcher, tracker, "ticket_store_down")
        return []
    ticket = filed.ticket
    values = {
        **reply_values(ticket, now, contact),
        "place": ticket.place or "",
        "preferred_time": ticket.preferred_time or "",
        "status": STATUSES[ticket.status],
    }
    if subject == "handoff":
        try:
            return [SlotSet("filed_ticket", ticket.number), *hand_over(dispatcher, tracker, ticket, contact)]
        except TicketStoreUnavailable:
            # the ticket is filed but the queue cannot be reached: the ticket's promise holds
            log.exception("could not queue the handoff of %s", ticket.number)
            say(dispatcher, tracker, "filed_handoff", **values)
            return [SlotSet("filed_ticket", ticket.number)]
    say(dispatcher, tracker, f"filed_{subject}" if filed.created else "ticket_existing", **values)
    return [SlotSet("filed_ticket", ticket.number)]


def file_from_conversation(
    tracker: Tracker, subject: str, now: datetime, facts: Mapping[str, str] | None = None
) -> tuple[Filed, str]:
    """File the conversation's ticket for `subject` (or find the open one it has for the same
    matter), and how the customer is told who will call. TicketStoreUnavailable if it cannot."""
    # a callback is filed because the company's system did not answer: it is not asked again
    number = tracker.get_slot("account_number")
    account = None if subject == complaints.CALLBACK else account_or_none(number)
    phone, contact = callback_contact(tracker, account)
    texts = customer_texts(tracker.events)
    names = person_names(tracker.events) | ({account.holder_name} if account else set())
    rule = complaints.SUBJECTS[subject]
    draft = Draft(
        request_type=rule.request_type,
        subject=subject,
        category=rule.category
        or tracker.get_slot("complaint_category")
        or complaints.handoff_category(texts, tracker.get_slot("request")),
        channel=tracker.get_latest_input_channel() or "unknown",
        conversation_id=tracker.sender_id,
        # the phone, 户号 and name have their own fields; the words keep them masked
        description=mask_names(mask_text(tracker.get_slot("complaint_text") or _description(texts)), names),
        # a well-formed 户号 the customer gave stays on the ticket even when it could not be
        # looked up (the slot may also hold a stray number the NLU took for one, e.g. 12398)
        account_number=account.number if account else accounts.parse(number).number,
        callback_phone=phone,
        place=tracker.get_slot("place") or tracker.get_slot("area") or (account.address if account else None),
        preferred_time=tracker.get_slot("preferred_time"),
        # the ticket keeps how upset the customer was at the worst moment
        frustration=int(max(highest(tracker.events, "frustration"), tracker.get_slot("frustration") or 0)),
        key_account=bool(account and account.key_account),
        facts=dict(facts or {}),
        transcript=transcript(tracker.events, names),
        escalation=tracker.get_slot("escalation"),
    )
    filed = file_ticket(tickets_db(), draft, now)
    if not filed.created:
        try:
            add_note(tickets_db(), filed.ticket.number, "bot", "客户在同一对话中再次反映此问题", now)
        except TicketStoreUnavailable:
            # the ticket stands and its number may be said; only the note is missing
            log.exception("could not note the repeat on %s", filed.ticket.number)
    return filed, contact


def reply_values(ticket: Ticket, now: datetime, contact: str) -> dict[str, str]:
    """The number, the deadline in plain words (2小时内, 今天16:30前) and who will call."""
    return {
        "number": ticket.number,
        "within": duration(ticket.sla_due_at - ticket.created_at),
        "due": moment(ticket.sla_due_at, now),
        "contact": contact,
    }


def callback_contact(tracker: Tracker, account: Account | None) -> tuple[str | None, str]:
    """The phone the agent will call, and how the customer is told about it (masked)."""
    given = tracker.get_slot("callback_phone")
    if given and given not in (complaints.ON_FILE, complaints.NO_PHONE):
        return given, render("contact_given", phone=mask_phone(given))
    locked = tracker.get_slot("escalation") == "identity_locked"
    if account is not None and given != complaints.NO_PHONE and not locked:
        if tracker.get_slot("verified_account") == account.number:
            return account.phone, render("contact_on_file", phone=mask_phone(account.phone))
        # the last four digits are the identity proof: not shown before the check
        return account.phone, render("contact_on_file_unverified")
    return None, render("contact_none")


def _description(texts: list[str]) -> str:
    """The customer's own words of this conversation, the latest ones last."""
    meaningful = [t for t in texts if complaints.has_substance(t)]
    return " / ".join((meaningful or texts)[-5:])
