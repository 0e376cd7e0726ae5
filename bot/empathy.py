"""Feelings first (先处理感情，再处理事情): which problem the customer is upset about.

The scripted empathy lines are responses in domain.yml named `utter_empathy_<topic>`;
each names the problem, apologises, and ends with `{next}`, what the bot does now,
so an apology never stands without an action.
"""

from __future__ import annotations

from bot.text import normalize
from bot.tickets.categories import infer_category

TOPICS = ("outage", "high_bill", "reconnection", "meter", "power_quality", "hazard", "staff", "channel", "general")

_BY_INTENT = {
    "query_outage": "outage",
    "bill_too_high": "high_bill",
    "query_bill": "high_bill",
    "payment_not_restored": "reconnection",
    "meter_dispute": "meter",
    "report_power_quality": "power_quality",
    "report_hazard": "hazard",
}
_BY_CATEGORY = {
    "supply_quality": "power_quality",
    "outage": "outage",
    "repair_quality": "outage",
    "metering": "meter",
    "tariff_billing": "high_bill",
    "meter_reading_collection": "high_bill",
    "meter_installation": "meter",
    "connection_project": "general",
    "usage_inspection": "general",
    "service_channel": "channel",
    "staff_conduct": "staff",
    "integrity": "staff",
}
_RECONNECTION = ("交了", "缴了", "交清", "缴清", "复电", "送电", "来电")


def topic_of(text: str | None, intent: str | None, request: str | None = None) -> str:
    """The problem named in this message, else the one the conversation is about."""
    if intent in _BY_INTENT:
        return _BY_INTENT[intent]
    text = normalize(text)
    category = infer_category(text)
    if category == "meter_reading_collection" and any(word in text for word in _RECONNECTION):
        return "reconnection"
    if category is not None:
        return _BY_CATEGORY[category]
    return _BY_INTENT.get(request or "", "general")


def response_name(topic: str) -> str:
    return f"utter_empathy_{topic}"
