"""What one event of Rasa's stream changes in the analytics tables (bot/analytics/models.py).

Rasa's event broker publishes each tracker event as one JSON object: `sender_id` (the
conversation), `event` (its type), `timestamp`, and the event's own fields. An event is
counted once: its key (a hash of the whole event) goes into `analytics_events` in the same
transaction as the counts it changes, so a second delivery of it changes nothing.

What counts, each on the local day of its own timestamp unless said otherwise:
- a customer message: a `user` event not triggered from outside (an agent's reply or a
  reminder comes in as an external intent, `metadata.is_external`). The first one starts
  the conversation: its channel, and the day its conversation and handoff count on;
- a relayed message: `action_relay_to_agent` ran, the customer wrote while an agent had
  the conversation, so the bot had nothing to understand;
- a fallback (兜底): `action_fallback` (ours: rephrase, then a person) or Rasa's own
  `action_default_fallback` answered the turn, because the NLU did not understand or no
  rule knew what came next;
- a handoff: the `filed_ticket` slot set to a ticket whose subject is `handoff`, counted
  once per conversation on the day it started. The ticket row tells the subject: the
  action that files a ticket clears the `ticket_subject` slot in the same breath;
- a bot message moves the conversation's last activity;
- a bot message said in place of an action that could not run (`metadata.interruption`:
  nginx's actions door answers so when no action server does) is an interruption, kept
  once per conversation and moment for the recovery worker (bot/cluster/recovery.py).
Every other event (three in four of a turn's: the actions, most slots, the
featurisation) changes no figure: it is neither hashed nor written, so a turn costs the
consumer a few rows instead of one for each of its ~16 events (bench/RESULTS.md, issue 8).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from bot import clock
from bot.analytics.models import ConversationFactsRow, CountedEventRow, DayFiguresRow, InterruptionRow
from bot.dialogue import FALLBACK_ACTION
from bot.handoff.names import RELAY
from bot.tickets.models import TicketRow
from bot.tickets.numbers import normalize_number

FALLBACK_ACTIONS = frozenset({FALLBACK_ACTION, "action_default_fallback"})
COUNTED_ACTIONS = FALLBACK_ACTIONS | {RELAY}
INTERRUPTIONS = frozenset({"actions_down"})  # what nginx's actions door says (bot/cluster/files.py)
HANDOFF_SUBJECT = "handoff"
FILED_TICKET_SLOT = "filed_ticket"
MAX_CONVERSATION_ID = 255  # as the tickets and handoffs store it
MAX_CHANNEL = 32
FORGET_BATCH = 5000  # keys forgotten a transaction
_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


class MalformedEvent(ValueError):
    """The message is not an event of Rasa's stream."""


@dataclass(frozen=True)
class StreamEvent:
    conversation_id: str
    kind: str  # Rasa's event type: user, bot, action, slot, ...
    at: datetime  # local, naive
    fields: Mapping[str, Any]

    @cached_property
    def key(self) -> str:
        """sha256 of the event: the same event delivered twice has the same key."""
        canonical = json.dumps(self.fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()

    @property
    def counts(self) -> bool:
        """Whether the event can change a figure (the module's docstring): only those are recorded."""
        if self.kind == "user":
            return not _external(self.fields)
        if self.kind == "action":
            return self.fields.get("name") in COUNTED_ACTIONS
        return self.kind == "bot" or (self.kind == "slot" and self.fields.get("name") == FILED_TICKET_SLOT)


def parse(body: bytes) -> StreamEvent:
    """The event in a message's body, or MalformedEvent saying what is wrong with it."""
    try:
        event = json.loads(body)
    except (ValueError, RecursionError) as error:  # undecodable bytes are a ValueError too
        raise MalformedEvent(f"not JSON ({type(error).__name__})") from None
    if not isinstance(event, dict):
        raise MalformedEvent("not a JSON object")
    sender, kind, timestamp = event.get("sender_id"), event.get("event"), event.get("timestamp")
    if not isinstance(sender, str) or not sender or len(sender) > MAX_CONVERSATION_ID or "\x00" in sender:
        raise MalformedEvent("no usable sender_id")
    if not isinstance(kind, str) or not kind:
        raise MalformedEvent("no event type")
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)) or not math.isfinite(timestamp):
        raise MalformedEvent("no usable timestamp")
    try:
        at = clock.from_timestamp(timestamp)
    except (OverflowError, OSError, ValueError):
        raise MalformedEvent("timestamp out of range") from None
    return StreamEvent(sender, kind, at, event)


def record(sessions: sessionmaker, event: StreamEvent) -> bool | None:
    """Count the event, unless it was counted before: True if it was counted now, None
    if it changes no figure."""
    return record_all(sessions, [event])[0]


def record_all(sessions: sessionmaker, events: list[StreamEvent]) -> list[bool | None]:
    """Count the events in order in one transaction (all or none), each unless it was
    counted before: for each, True if it was counted now, False if before, None if it
    changes no figure (not written; a batch of only such events opens no transaction).
    One commit for a batch is what keeps the consumer's CPU small next to the Rasa
    servers' (bench/RESULTS.md, issue 8)."""
    counted: list[bool | None] = [None] * len(events)
    counting = [index for index, event in enumerate(events) if event.counts]
    if not counting:
        return counted
    now = clock.now()
    with sessions.begin() as session:
        for index in counting:
            event = events[index]
            # a redelivery is not new; on PostgreSQL a concurrent one waits here for the first
            counted[index] = _insert_new(session, CountedEventRow, key=event.key, at=event.at, counted_at=now)
            if counted[index]:
                _count(session, event)
    return counted


def forget_counted(sessions: sessionmaker, before: datetime, batch: int = FORGET_BATCH) -> int:
    """Forget the keys of events counted before `before`, a batch a transaction (a long
    delete would hold up the counting): how many were forgotten. RabbitMQ redelivers only
    what was not acknowledged, at the latest when the consumer comes back, so an event
    counted long ago cannot come again; a key kept for ever would only fill the table."""
    forgotten = 0
    while True:
        with sessions.begin() as session:
            keys = select(CountedEventRow.key).where(CountedEventRow.counted_at < before).limit(batch)
            gone = session.execute(
                delete(CountedEventRow).where(CountedEventRow.key.in_(keys.scalar_subquery())),
                execution_options={"synchronize_session": False},
            ).rowcount
        forgotten += gone
        if gone < batch:
            return forgotten


def _count(session: Session, event: StreamEvent) -> None:
    fields, day = event.fields, event.at.date()
    if event.kind == "user":  # the customer's: an external one does not count (StreamEvent.counts)
        facts = _facts(session, event.conversation_id)
        increments = {"messages": 1}
        if facts.started_at is None:
            facts.started_at, facts.channel = event.at, _channel(fields.get("input_channel"))
            increments["conversations"] = 1
            if facts.handed_over_at is not None:  # its handoff was counted before its first message
                increments["handed_over"] = 1
        facts.messages += 1
        _moved(facts, event.at)
        _add(session, day, **increments)
    elif event.kind == "bot":
        facts = session.get(ConversationFactsRow, event.conversation_id, with_for_update=True)
        if facts is not None:
            _moved(facts, event.at)
        interruption = _interruption(fields)
        if interruption is not None:
            _insert_new(
                session, InterruptionRow, conversation_id=event.conversation_id, happened_at=event.at, kind=interruption
            )
    elif event.kind == "action" and fields.get("name") in FALLBACK_ACTIONS:
        _facts(session, event.conversation_id).fallbacks += 1
        _add(session, day, fallbacks=1)
    elif event.kind == "action" and fields.get("name") == RELAY:
        _facts(session, event.conversation_id).relayed += 1
        _add(session, day, relayed=1)
    elif event.kind == "slot" and fields.get("name") == FILED_TICKET_SLOT and _is_handoff(session, fields.get("value")):
        facts = _facts(session, event.conversation_id)
        if facts.handed_over_at is None:
            facts.handed_over_at = event.at
            if facts.started_at is not None:  # else counted when its first message is
                _add(session, facts.started_at.date(), handed_over=1)


def _external(fields: Mapping[str, Any]) -> bool:
    metadata = fields.get("metadata")
    return isinstance(metadata, dict) and bool(metadata.get("is_external"))


def _interruption(fields: Mapping[str, Any]) -> str | None:
    metadata = fields.get("metadata")
    kind = metadata.get("interruption") if isinstance(metadata, dict) else None
    return kind if isinstance(kind, str) and kind in INTERRUPTIONS else None


def _channel(value: Any) -> str:
    return str(value or "unknown").replace("\x00", "")[:MAX_CHANNEL]


def _moved(facts: ConversationFactsRow, at: datetime) -> None:
    if facts.last_message_at is None or at > facts.last_message_at:
        facts.last_message_at = at


def _is_handoff(session: Session, value: Any) -> bool:
    number = normalize_number(value) if isinstance(value, str) else None
    return (
        number is not None
        and session.scalar(select(TicketRow.subject).where(TicketRow.number == number)) == HANDOFF_SUBJECT
    )


def _facts(session: Session, conversation_id: str) -> ConversationFactsRow:
    """The conversation's row, made if missing, locked until commit (PostgreSQL): events
    of one conversation counted at once by two consumers take turns."""
    _insert_new(session, ConversationFactsRow, conversation_id=conversation_id)
    return session.get(ConversationFactsRow, conversation_id, with_for_update=True)


def _add(session: Session, day: date, **increments: int) -> None:
    """Add to the day's figures in the database itself (x = x + n): no lost update."""
    _insert_new(session, DayFiguresRow, day=day)
    values = {getattr(DayFiguresRow, name): getattr(DayFiguresRow, name) + n for name, n in increments.items()}
    session.execute(
        update(DayFiguresRow).where(DayFiguresRow.day == day).values(values),
        execution_options={"synchronize_session": False},
    )


def _insert_new(session: Session, model: type, **values: Any) -> bool:
    """Insert the row unless its key exists: True if it was inserted."""
    insert = _INSERTS[session.get_bind().dialect.name]
    return session.execute(insert(model).values(**values).on_conflict_do_nothing()).rowcount == 1
