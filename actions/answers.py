"""The answers to the account journeys, once the account (and identity) are known.

Each reads slots, asks a bot/ service, and turns what it says into replies.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.context import say
from actions.filing import file_and_tell
from bot import clock, months, tariff
from bot.billing import bill_status, explain_high_bill, find_bill
from bot.masking import mask_account
from bot.outages import area_outages
from bot.reconnection import reconnection_status
from bot.replies import render
from bot.tickets.categories import CATEGORIES, STATUSES
from bot.tickets.records import Ticket
from bot.tickets.service import add_note, conversation_tickets, open_tickets, short, ticket_for_customer, tickets_db
from bot.utility import UtilityData
from bot.wording import change_words, day, duration, kwh, moment, readings_table, window, yuan

Events = list[dict[str, Any]]


def _month(tracker: Tracker):
    return months.resolve(tracker.get_slot("month"), clock.today())


def answer_bill(dispatcher: CollectingDispatcher, tracker: Tracker, utility: UtilityData) -> Events:
    number = tracker.get_slot("account_number")
    asked = _month(tracker)
    found = find_bill(utility, number, asked)
    if found.latest is None:
        say(dispatcher, tracker, "bill_none")
        return []
    if found.bill is None:
        say(
            dispatcher,
            tracker,
            "bill_month_missing",
            month=months.label(asked),
            earliest=months.label(found.earliest),
            latest=months.label(found.latest),
        )
        return []
    if found.not_billed_yet:
        say(dispatcher, tracker, "bill_not_issued", month=months.label(asked), latest=months.label(found.latest))
    bill = found.bill
    status = render(
        f"bill_{bill_status(bill, clock.today())}",
        paid_on=day(bill.paid_at.date()) if bill.paid_at else "",
        due=day(bill.due_date),
    )
    say(
        dispatcher,
        tracker,
        "bill_answer",
        account=mask_account(number),
        month=months.label(bill.period),
        amount=yuan(bill.amount),
        usage=kwh(bill.usage_kwh),
        due=day(bill.due_date),
        status=status,
    )
    return []


def answer_high_bill(dispatcher: CollectingDispatcher, tracker: Tracker, utility: UtilityData) -> Events:
    facts = explain_high_bill(utility, tracker.get_slot("account_number"), _month(tracker))
    if facts is None:
        return answer_bill(dispatcher, tracker, utility)
    bill, previous, month = facts.bill, facts.previous, months.label(facts.bill.period)
    parts = []
    if previous is not None:
        parts.append(
            render(
                "high_bill_compare",
                month=month,
                usage=kwh(bill.usage_kwh),
                amount=yuan(bill.amount),
                previous_month=months.label(previous.period),
                previous_usage=kwh(previous.usage_kwh),
                previous_amount=yuan(previous.amount),
                change=change_words(facts.usage_change_kwh),
            )
        )
    if facts.year_ago is not None:
        parts.append(
            render(
                "high_bill_year_ago",
                year_ago_month=months.label(facts.year_ago.period),
                year_ago_usage=kwh(facts.year_ago.usage_kwh),
                year_ago_amount=yuan(facts.year_ago.amount),
            )
        )
    reasons = facts.reasons()
    for reason in reasons:
        if reason == "estimated_catch_up":
            total = bill.usage_kwh + previous.usage_kwh
            parts.append(
                render(
                    "high_bill_estimated",
                    previous_month=months.label(previous.period),
                    previous_usage=kwh(previous.usage_kwh),
                    month=month,
                    total=kwh(total),
                    average=kwh(total / 2),
                )
            )
        elif reason == "usage_up":
            parts.append(render("high_bill_usage_up", change_kwh=kwh(facts.usage_change_kwh)))
        elif reason == "usage_not_up":
            parts.append(render("high_bill_not_high", month=month))
        elif reason == "tier_crossed":
            bound = tariff.tiers()[facts.tier.number - 2].upper_kwh
            parts.append(
                render("high_bill_tier", month=month, bound=bound, tier=facts.tier.number, price=facts.tier.price)
            )
        elif reason == "this_month_estimated":
            parts.append(render("high_bill_this_month_estimated", month=month))
    estimated = "estimated_catch_up" in reasons or "this_month_estimated" in reasons
    # the offer to verify the meter is the turn's one question
    parts.append(render("high_bill_next_step_estimated" if estimated else "high_bill_next_step"))
    dispatcher.utter_message(text="\n".join(parts))
    return [SlotSet("offer", "meter_verification")]


def answer_readings(dispatcher: CollectingDispatcher, tracker: Tracker, utility: UtilityData) -> Events:
    number = tracker.get_slot("account_number")
    readings = utility.readings(number, limit=6)
    if not readings:
        say(dispatcher, tracker, "readings_none")
        return []
    parts = [
        render("readings", account=mask_account(number), count=len(readings), table=readings_table(readings))
    ]
    if any(r.estimated for r in readings):
        parts.append(render("readings_estimated_note"))
    # the offer to verify the meter is the turn's one question
    parts.append(render("offer_meter_verification"))
    dispatcher.utter_message(text="\n".join(parts))
    return [SlotSet("offer", "meter_verification")]


def answer_outage(dispatcher: CollectingDispatcher, tracker: Tracker, utility: UtilityData) -> Events:
    now = clock.now()
    place = tracker.get_slot("area")
    if place and place not in {a.name for a in utility.areas()}:
        say(dispatcher, tracker, "outage_unknown_place", place=place)
        return [SlotSet("offer", "fault")]
    if place:
        label = f"{place}一带"
    else:
        number = tracker.get_slot("account_number")
        account = utility.account(number)
        if account is None:
            say(dispatcher, tracker, "account_not_found", account=mask_account(number))
            return []
        # the area of an account is not said back before the identity check
        place, label = account.area, "您户号所在的片区"
    status = area_outages(utility, place, now)
    current, situation = status.current, status.situation
    parts = []
    if situation == "none":
        parts.append(render("outage_none", area=label))
    elif situation.startswith("fault"):
        parts.append(
            render(
                f"outage_{situation}",
                area=label,
                since=moment(current.starts_at, now),
                cause=f"原因是{current.cause}" if current.cause else "原因还在排查",
                eta=moment(current.ends_at, now) if current.ends_at else "",
            )
        )
    else:
        parts.append(
            render(
                f"outage_{situation}",
                area=label,
                cause=current.cause or "计划检修",
                window=window(current.starts_at, current.ends_at, now),
                end=moment(current.ends_at, now) if current.ends_at else "",
            )
        )
    for outage in status.planned:
        parts.append(
            render(
                "outage_planned_upcoming",
                area=label,
                window=window(outage.starts_at, outage.ends_at, now),
                cause=outage.cause or "计划检修",
            )
        )
    events: Events = []
    if situation == "none":
        # nothing known covers the customer: offer to file the fault report here
        parts.append(render("offer_fault_report"))
        events.append(SlotSet("offer", "fault"))
    dispatcher.utter_message(text="\n".join(parts))
    return events


def answer_reconnection(dispatcher: CollectingDispatcher, tracker: Tracker, utility: UtilityData) -> Events:
    """Paid but no power: the payment and the reconnection order, honestly; overdue files an urgent ticket."""
    now = clock.now()
    status = reconnection_status(utility, tracker.get_slot("account_number"), now)
    payment, order = status.payment, status.order
    paid = {
        "paid_at": moment(payment.paid_at, now) if payment else "",
        "amount": yuan(payment.amount) if payment else "",
        "channel": payment.channel if payment else "",
    }
    if status.situation in ("overdue", "paid_no_order"):
        overdue = status.situation == "overdue"
        due = {"due": moment(order.due_at, now), "overdue": duration(status.overdue_by)} if overdue else {}
        say(dispatcher, tracker, "reconnection_overdue" if overdue else "reconnection_no_order", **paid, **due)
        facts = {"缴费时间": paid["paid_at"], "缴费金额": paid["amount"], "缴费渠道": paid["channel"]}
        if overdue:
            facts.update(
                {"复电工单生成": moment(order.created_at, now), "承诺复电时间": due["due"], "已超时": due["overdue"]}
            )
        return file_and_tell(dispatcher, tracker, "reconnection_overdue", facts)
    if status.situation == "pending":
        say(dispatcher, tracker, "reconnection_pending", **paid, due=moment(order.due_at, now))
        return []
    if status.situation in ("restored", "not_disconnected"):
        completed = moment(order.completed_at, now) if order and order.completed_at else ""
        say(dispatcher, tracker, f"reconnection_{status.situation}", completed=completed)
        return [SlotSet("offer", "fault")]
    say(dispatcher, tracker, "reconnection_unpaid")
    return []


def answer_ticket(dispatcher: CollectingDispatcher, tracker: Tracker, utility: UtilityData) -> Events:
    """By number (only the customer's own), else the verified account's or this conversation's open tickets."""
    now = clock.now()
    number = (tracker.get_slot("ticket_number") or "").upper().replace(" ", "")
    verified = tracker.get_slot("verified_account")
    if number:
        ticket = ticket_for_customer(tickets_db(), number, tracker.sender_id, verified)
        if ticket is None:
            say(dispatcher, tracker, "ticket_not_found", number=number)
        else:
            dispatcher.utter_message(text=_ticket_line(ticket, now))
            _chase_if_overdue(ticket, now)
        return [SlotSet("ticket_number", None)]
    tickets = open_tickets(tickets_db(), verified) if verified else []
    if not tickets:
        tickets = conversation_tickets(tickets_db(), tracker.sender_id)
    if not tickets:
        say(dispatcher, tracker, "tickets_none")
        return []
    lines = "\n".join(f"{i}. {_ticket_line(t, now)}" for i, t in enumerate(tickets[:5], 1))
    for ticket in tickets[:5]:
        _chase_if_overdue(ticket, now)
    say(dispatcher, tracker, "tickets_open", count=len(tickets), lines=lines)
    return []


def _overdue(ticket: Ticket, now: datetime) -> bool:
    return ticket.status in ("new", "assigned", "in_progress") and ticket.sla_due_at < now


def _chase_if_overdue(ticket: Ticket, now: datetime) -> None:
    """The reply says the chase is on the ticket: it is."""
    if _overdue(ticket, now):
        add_note(tickets_db(), ticket.number, "bot", "客户查询进度时已超过承诺时间，请尽快联系客户", now)


def _ticket_line(ticket: Ticket, now: datetime) -> str:
    key = "ticket_overdue" if _overdue(ticket, now) else f"ticket_{ticket.status}"
    return render(
        key,
        summary=short(ticket.description, 24),
        number=ticket.number,
        category=CATEGORIES[ticket.category],
        created=moment(ticket.created_at, now),
        status=STATUSES[ticket.status],
        due=moment(ticket.sla_due_at, now),
        resolution=ticket.resolution or "",
    )


ANSWERS: dict[str, Callable[[CollectingDispatcher, Tracker, UtilityData], Events]] = {
    "query_bill": answer_bill,
    "bill_too_high": answer_high_bill,
    "meter_dispute": answer_readings,
    "query_outage": answer_outage,
    "payment_not_restored": answer_reconnection,
    "query_ticket": answer_ticket,
}
