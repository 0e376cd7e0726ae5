"""The answers to the account journeys, once the account (and identity) are known."""

from __future__ import annotations

from collections.abc import Callable

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.context import say
from bot import clock, months, tariff
from bot.billing import explain_high_bill, find_bill
from bot.masking import mask_account
from bot.outages import area_outages
from bot.replies import render
from bot.utility import UtilityData
from bot.wording import day, kwh, moment, readings_table, yuan


def _month(tracker: Tracker):
    return months.resolve(tracker.get_slot("month"), clock.today())


def answer_bill(dispatcher: CollectingDispatcher, tracker: Tracker, utility: UtilityData) -> None:
    number = tracker.get_slot("account_number")
    asked = _month(tracker)
    lookup = find_bill(utility, number, asked)
    if lookup.latest is None:
        return say(dispatcher, tracker, "bill_none")
    bill = lookup.bill
    if bill is None and asked > lookup.latest:
        say(dispatcher, tracker, "bill_not_issued", month=months.label(asked), latest=months.label(lookup.latest))
        bill = find_bill(utility, number, None).bill
    elif bill is None:
        return say(
            dispatcher,
            tracker,
            "bill_month_missing",
            month=months.label(asked),
            earliest=months.label(lookup.earliest),
            latest=months.label(lookup.latest),
        )
    if bill.paid:
        status = render("bill_paid", paid_on=day(bill.paid_at.date()))
    elif bill.due_date >= clock.today():
        status = render("bill_unpaid", due=day(bill.due_date))
    else:
        status = render("bill_overdue")
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
    bill, previous = facts.bill, facts.previous
    parts = []
    if previous is not None:
        change = facts.usage_change_kwh
        change_words = f"多了{kwh(change)}" if change > 0 else f"少了{kwh(-change)}" if change < 0 else "持平"
        parts.append(
            render(
                "high_bill_compare",
                month=months.label(bill.period),
                usage=kwh(bill.usage_kwh),
                amount=yuan(bill.amount),
                previous_month=months.label(previous.period),
                previous_usage=kwh(previous.usage_kwh),
                previous_amount=yuan(previous.amount),
                change=change_words,
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
    if facts.catch_up_after_estimate:
        total = bill.usage_kwh + previous.usage_kwh
        parts.append(
            render(
                "high_bill_estimated",
                previous_month=months.label(previous.period),
                previous_usage=kwh(previous.usage_kwh),
                month=months.label(bill.period),
                total=kwh(total),
                average=kwh(total / 2),
            )
        )
    elif previous is not None and facts.usage_change_kwh > 0:
        parts.append(render("high_bill_usage_up", change_kwh=kwh(facts.usage_change_kwh)))
    elif previous is not None:
        parts.append(render("high_bill_not_high", month=months.label(bill.period)))
    if facts.crossed_tier:
        bound = tariff.tiers()[facts.tier.number - 2].upper_kwh
        parts.append(render("high_bill_tier", bound=bound, tier=facts.tier.number, price=facts.tier.price))
    parts.append(render("high_bill_next_step"))
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
    known = {a.name for a in utility.areas()}
    if place and place not in known:
        return say(dispatcher, tracker, "outage_unknown_place", place=place)
    if not place:
        account = utility.account(tracker.get_slot("account_number"))
        if account is None:
            number = tracker.get_slot("account_number")
            return say(dispatcher, tracker, "account_not_found", account=mask_account(number))
        place = account.area
    status = area_outages(utility, place, now)
    parts = []
    current = status.current
    if current is not None and current.kind == "fault":
        since = moment(current.starts_at, now)
        eta = moment(current.ends_at, now) if current.ends_at else None
        if status.restoration_overdue:
            key = "outage_fault_overdue"
        elif eta is None:
            key = "outage_fault_no_eta"
        elif not current.cause:
            key = "outage_fault_no_cause"
        else:
            key = "outage_fault"
        parts.append(render(key, area=place, since=since, cause=current.cause or "", eta=eta or ""))
    elif current is not None:
        parts.append(
            render(
                "outage_planned_now",
                area=place,
                cause=current.cause or "计划检修",
                window=_window(current.starts_at, current.ends_at, now),
                end=moment(current.ends_at, now) if current.ends_at else "检修结束后",
            )
        )
    for outage in status.planned:
        parts.append(
            render(
                "outage_planned_upcoming",
                area=place,
                window=_window(outage.starts_at, outage.ends_at, now),
                cause=outage.cause or "计划检修",
            )
        )
    if current is None:
        parts.insert(0, render("outage_none", area=place))
    dispatcher.utter_message(text="\n".join(parts))


def _window(start, end, now) -> str:
    if end is None:
        return f"{moment(start, now)}起"
    if start.date() == end.date():
        return f"{moment(start, now)}至{end:%H:%M}"
    return f"{moment(start, now)}至{moment(end, now)}"


ANSWERS: dict[str, Callable[[CollectingDispatcher, Tracker, UtilityData], None]] = {
    "query_bill": answer_bill,
    "bill_too_high": answer_high_bill,
    "meter_dispute": answer_readings,
    "query_outage": answer_outage,
}
