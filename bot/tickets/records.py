"""What the ticket service takes and gives: plain frozen values, never ORM rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.tickets.categories import CATEGORIES, REQUEST_TYPES, STATUSES

CLOSED_STATUSES = frozenset({"resolved", "closed"})


def open_key(conversation_id: str, subject: str, category: str) -> str:
    """While a ticket is open, the same conversation filing the same matter gets it back."""
    return f"{conversation_id}|{subject}|{category}"


@dataclass(frozen=True)
class TranscriptLine:
    speaker: str  # customer | bot | agent
    text: str
    at: datetime | None = None


@dataclass(frozen=True)
class Draft:
    """A ticket as the bot has gathered it, before it has a number."""

    request_type: str  # complaint | fault_repair | service_request | enquiry
    subject: str  # the journey key: hazard, fault, reconnection_overdue, bill_too_high, ...
    category: str  # one of the twelve (categories.CATEGORIES)
    channel: str  # rest | socketio | wechat | ...
    conversation_id: str
    description: str
    account_number: str | None = None
    callback_phone: str | None = None
    place: str | None = None
    preferred_time: str | None = None
    frustration: int = 0  # 0..3 (bot/frustration.py)
    key_account: bool = False  # 重要客户
    facts: Mapping[str, str] = field(default_factory=dict)  # what the bot found out (bill amounts, outage id ...)
    transcript: Sequence[TranscriptLine] = ()
    escalation: str | None = None  # request_human | fallbacks | identity_locked | frustration


@dataclass(frozen=True)
class Ticket:
    """A ticket as it stands (a view: changing it changes nothing)."""

    id: int
    number: str
    request_type: str
    subject: str
    category: str
    priority: str
    status: str
    channel: str
    conversation_id: str
    account_number: str | None
    callback_phone: str | None
    place: str | None
    preferred_time: str | None
    description: str
    frustration: int
    facts: dict[str, str]
    sla_due_at: datetime
    assigned_agent: str | None
    substantiated: bool | None
    return_visit_result: str | None
    satisfaction: int | None
    satisfaction_comment: str | None
    resolution: str | None
    resolved_at: datetime | None
    return_visit_due_at: datetime | None
    unit: str | None  # the staff member or unit the complaint names
    created_at: datetime
    updated_at: datetime
    open_key: str | None

    @property
    def is_open(self) -> bool:
        return self.status not in CLOSED_STATUSES

    @property
    def category_name(self) -> str:
        return CATEGORIES.get(self.category, self.category)

    @property
    def request_type_name(self) -> str:
        return REQUEST_TYPES.get(self.request_type, self.request_type)

    @property
    def status_name(self) -> str:
        return STATUSES.get(self.status, self.status)


@dataclass(frozen=True)
class Filed:
    ticket: Ticket
    created: bool  # False: the same complaint was already open, this is that ticket


@dataclass(frozen=True)
class TicketEventView:
    at: datetime
    actor: str  # bot | customer | agent:<name> | system
    kind: str  # filed | escalated | assigned | status_changed | note | callback_phone_changed | forwarded
    detail: dict[str, Any]
