"""The journeys that end in a ticket: what each files, and what it must ask first.

A *subject* names the journey: a complaint in the customer's own words, a request
for a person (handoff), a safety hazard, a power-quality report, a fault report
with no known outage, a meter verification (校验), a reconnection that is
overdue after the arrears were paid, or a callback (回电): the company's system did
not answer a question, so a person finds the answer and calls the customer back.
The ticket form asks only what its subject still lacks, one question a turn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.text import normalize
from bot.tickets.categories import CATEGORIES, infer_category

# markers of the callback phone: the phone on file for the 户号, or none wanted
ON_FILE = "account"
NO_PHONE = "none"
# the subject filed when the company's system did not answer
CALLBACK = "callback"
# the ticket form's slots: what a journey gathered before its ticket is filed
FORM_SLOTS = ("complaint_text", "complaint_category", "category_guess", "callback_phone", "place", "preferred_time")


@dataclass(frozen=True)
class Subject:
    request_type: str
    category: str | None  # None: taken from the customer's words
    asks: tuple[str, ...]  # slots of the ticket form, in the order they are asked


SUBJECTS: dict[str, Subject] = {
    "complaint": Subject("complaint", None, ("complaint_text", "complaint_category", "callback_phone")),
    "handoff": Subject("enquiry", None, ("callback_phone",)),
    "hazard": Subject("fault_repair", "outage", ("place",)),
    "power_quality": Subject("fault_repair", "supply_quality", ("place", "callback_phone")),
    "fault": Subject("fault_repair", "outage", ("callback_phone",)),
    "meter_verification": Subject("service_request", "metering", ("preferred_time",)),
    "reconnection_overdue": Subject("complaint", "meter_reading_collection", ()),
    # filed at once (首问负责制); the form runs after it, only to ask for a phone
    CALLBACK: Subject("enquiry", None, ("callback_phone",)),
}

# what each request is about, when the customer's words do not say
REQUEST_CATEGORIES = {
    "query_bill": "tariff_billing",
    "bill_too_high": "tariff_billing",
    "meter_dispute": "metering",
    "query_outage": "outage",
    "payment_not_restored": "meter_reading_collection",
}
# the request, as the agent who calls back reads it on the ticket
REQUEST_NAMES = {
    "query_bill": "查电费",
    "bill_too_high": "电费为什么偏高",
    "meter_dispute": "电表读数",
    "query_outage": "停电情况",
    "payment_not_restored": "缴费后何时复电",
    "query_ticket": "工单进度",
}

# asking for a person, or to complain, says nothing yet about what went wrong
_GENERIC = re.compile(
    r"我要|我想|要|想|帮我|给我|请|麻烦|你们|我|投诉|举报|反映|人工|转人工|客服|真人|坐席|接线员|找|转|一下|下|个|的|了|吧|啊|呢|"
    r"[\s,.!?;:，。！？；：、~～…]"
)
_STOP = re.compile(
    r"算了|不投诉了|不用登记|不要登记|别登记|取消|不办了|不弄了|不报了|以后再说|先不(用|要|了)?|不需要了|不用了"
)
_DECLINE_PHONE = re.compile(r"不用|不方便|不想留|不留|不要|没有|没手机|别打|不需要")


def required(subject: str | None, contact_known: bool) -> list[str]:
    """The ticket form's slots for this subject. The callback phone is asked only when none
    is known, except for a complaint, where the phone on file is confirmed first."""
    if subject not in SUBJECTS:
        return []
    skip_phone = contact_known and subject != "complaint"
    return [s for s in SUBJECTS[subject].asks if not (s == "callback_phone" and skip_phone)]


def phone_on_file_usable(subject: str | None, escalation: str | None) -> bool:
    """Whether the phone on file for the 户号 may be offered: not after the identity check
    locked the account, nor for a callback, whose company system (that holds it) is down."""
    return escalation != "identity_locked" and subject != CALLBACK


def callback_facts(request: str | None, month: str | None, area: str | None, verified: bool) -> dict[str, str]:
    """What the agent who calls back must answer, and whether the customer proved who they
    are: if not, the agent checks before saying anything about the account."""
    facts = {"待答复的问题": REQUEST_NAMES.get(request or "", "客户的查询")}
    if month:
        facts["月份"] = month
    if area:
        facts["地区"] = area
    facts["身份核验"] = "已通过" if verified else "未完成：回电时请先核实身份，再告知户号信息"
    return facts


def has_substance(text: str | None) -> bool:
    """True when the message says what went wrong, not only "我要投诉" or "转人工"."""
    rest = _GENERIC.sub("", normalize(text))
    return len(rest) >= 4 or infer_category(text or "") is not None


def is_stopping(text: str | None, asking: str | None) -> bool:
    """The customer wants to leave the form ("算了，不投诉了"). To the phone question,
    a plain "不用了" declines the callback and is not leaving."""
    text = normalize(text)
    if asking == "callback_phone":
        # "算了，电话就不留了" only declines the phone
        return bool(re.search(r"不投诉了|取消|不办了|不弄了|不登记|不用登记|以后再说", text))
    return bool(_STOP.search(text))


def declines_phone(text: str | None) -> bool:
    return bool(_DECLINE_PHONE.search(normalize(text)))


def category_in(text: str | None) -> str | None:
    """A category the customer chose by name (a button, or "是服务态度问题"), else inferred."""
    text = normalize(text)
    for key, name in CATEGORIES.items():
        if name in text or key == text.strip():
            return key
    return infer_category(text)


def handoff_category(texts: list[str], request: str | None) -> str:
    """What a request for a person is about: the customer's words, the open request, else the channel."""
    for text in reversed(texts):
        found = infer_category(text)
        if found:
            return found
    return request_category(request)


def request_category(request: str | None) -> str:
    """The category of what the customer asked for (查电费: 电价电费), else the channel's."""
    return REQUEST_CATEGORIES.get(request or "", "service_channel")
