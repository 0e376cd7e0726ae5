"""File the ticket a journey gathered and tell the customer its number, deadline and
who will call. Runs in a worker thread (database and company-system calls)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
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
from bot.tickets.records import Draft
from bot.tickets.service import add_note, file_ticket, tickets_db
from bot.utility import account_or_none
from bot.utility.records import Account
from bot.wording import duration, moment

log = logging.getLogger(__name__)


def file_and_tell(
    dispatcher: CollectingDispatcher, tracker: Tracker, subject: str, facts: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    now = clock.now()
    account = account_or_none(tracker.get_slot("account_number"))
    phone, contact = _callback(tracker, account)
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
        account_number=account.number if account else accounts.parse(tracker.get_slot("account_number")).number,
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
    try:
        filed = file_ticket(tickets_db(), draft, now)
        ticket = filed.ticket
        if not filed.created:
            add_note(tickets_db(), ticket.number, "bot", "客户在同一对话中再次反映此问题", now)
    except TicketStoreUnavailable:
        log.exception("could not file a %s ticket", subject)
        say(dispatcher, tracker, "ticket_store_down")
        return []
    values = {
        "number": ticket.number,
        "within": duration(ticket.sla_due_at - ticket.created_at),
        "due": moment(ticket.sla_due_at, now),
        "contact": contact,
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


def _callback(tracker: Tracker, account: Account | None) -> tuple[str | None, str]:
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
