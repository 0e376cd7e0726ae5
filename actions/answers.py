"""The answers to the account journeys, once the account (and identity) are known.

Each reads slots, asks a bot/ service, and turns what it says into replies.
"""

from __future__ import annotations

from collections.abc import Callable

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.context import say
from bot import clock, months, tariff
from bot.billing import bill_status, explain_high_bill, find_bill
from bot.masking import mask_account
from bot.outages import area_outages
from bot.replies import render
from bot.utility import UtilityData
from bot.wording import change_words, day, kwh, moment, readings_table, window, yuan


def _month(tracker: Tracker):
    return months.resolve(tracker.get_slot("month"), clock.today())


def answer_bill(dispatcher: CollectingDispatcher, tracker: Tracker, utility: UtilityData) -> None:
    number = tracker.get_slot("account_number")
    asked = _month(tracker)
    found = find_bill(utility, number, asked)
    if found.latest is None:
        return say(dispatcher, tracker, "bill_none")
    if found.bill is None:
        return say(
            dispatcher,
            tracker,
            "bill_month_missing",
            month=months.label(asked),
            earliest=months.label(found.earliest),
            latest=months.label(found.latest),
        )
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


def answer_high_bill(dispatcher: CollectingDispatcher, tracker: Tracker, utility: UtilityData) -> None:
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
    parts.append(render("high_bill_next_step_estimated" if estimated else "high_bill_next_step"))
    dispatcher.utter_message(text="\n".join(parts))


def answer_readings(dispatcher: CollectingDispatcher, tracker: Tracker, utility: UtilityData) -> None:
    number = tracker.get_slot("account_number")
    readings = utility.readings(number, limit=6)
    if not readings:
        return say(dispatcher, tracker, "readings_none")
    parts = [
        render("readings", account=mask_account(number), count=len(readings), table=readings_table(readings))
    ]
    if any(r.estimated for r in readings):
        parts.append(render("readings_estimated_note"))
    parts.append(render("readings_next_step"))
    dispatcher.utter_message(text="\n".join(parts))


def answer_outage(dispatcher: CollectingDispatcher, tracker: Tracker, utility: UtilityData) -> None:
    now = clock.now()
    place = tracker.get_slot("area")
    if place and place not in {a.name for a in utility.areas()}:
        return say(dispatcher, tracker, "outage_unknown_place", place=place)
    if place:
        label = f"{place}一带"
    else:
        number = tracker.get_slot("account_number")
        account = utility.account(number)
        if account is None:
            return say(dispatcher, tracker, "account_not_found", account=mask_account(number))
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
    dispatcher.utter_message(text="\n".join(parts))


ANSWERS: dict[str, Callable[[CollectingDispatcher, Tracker, UtilityData], None]] = {
    "query_bill": answer_bill,
    "bill_too_high": answer_high_bill,
    "meter_dispute": answer_readings,
    "query_outage": answer_outage,
}
