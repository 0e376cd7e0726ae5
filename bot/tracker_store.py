"""The tracker stores of this project.

ProcessTrackerStore, the embedded default's: Rasa's in-memory store, with one store per
process instead of one per loaded model, keeping the conversation's event objects instead
of a JSON text.

Replacing the model through Rasa's HTTP API (PUT /model, what promoting a trained model
does) builds a new agent with a new tracker store from endpoints.yml; Rasa's own
InMemoryTrackerStore would start empty and every customer mid-conversation would lose
it. Rasa's store also writes the whole conversation to JSON after every message and parses
it back before the next one, a fifth of the Rasa server's CPU on a conversation of 30 turns
under load (bench/RESULTS.md, issue 8); the events themselves are kept here and the tracker
is rebuilt from them as Rasa rebuilds it from the JSON. Events are not changed once in a
tracker (Rasa makes new ones), so sharing them between the trackers of successive messages
is safe, and the same event objects message after message let the other speed-ups
(bot/rasa_speedups/) recognise what they already did.

PatientSQLTrackerStore, production's: Rasa's SQL tracker store, waiting out a database
restart instead of forgetting, reading only the rows a conversation gained since this
server last read it (Rasa reads and parses every row of the session on every message), and
handing the event broker the events it saves without reading the whole conversation back.

Rasa wraps every tracker store in its `FailSafeTrackerStore`: when the database does not
answer, a conversation it cannot read starts again from nothing, and a turn it cannot
save is kept in the server's memory only, while the customer is answered as if all were
well. A PostgreSQL restart of a few seconds thus cut complaints in half (the customer's
phone number landing in a new, empty conversation) and lost turns silently.

This store tries again while the database is away (connection refused, "starting up",
"shutting down", a connection cut: SQLAlchemy's OperationalError and connections it
invalidated), every `retry_seconds` doubling to 2 s, for up to `patience_seconds`; the
turn waits, other conversations go on (the waits are asyncio sleeps). Only after that
does Rasa's fail-safe take over. A save tried again publishes the turn's events to the
event broker again: the analytics consumer counts an event once however often it comes.

endpoints.yml: tracker_store: {type: bot.tracker_store.PatientSQLTrackerStore, dialect:
postgresql, url: ..., port: ..., db: ..., username: ..., password: ..., patience_seconds: 20}
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import InMemoryTrackerStore, SQLTrackerStore
from rasa.shared.core.constants import ACTION_SESSION_START_NAME
from rasa.shared.core.conversation import Dialogue
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, Event, SessionStarted, deserialise_events
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY
from sqlalchemy.exc import DBAPIError, OperationalError

log = logging.getLogger(__name__)

_CONVERSATIONS: dict[str, list[Event]] = {}  # sender id -> the conversation's events, for the process's life


class ProcessTrackerStore(InMemoryTrackerStore):
    """Conversations in this process's memory, kept across model swaps."""

    def __init__(self, domain: Domain, event_broker: EventBroker | None = None, **kwargs: Any) -> None:
        super().__init__(domain, event_broker, **kwargs)
        self.store = _CONVERSATIONS  # type: ignore[assignment]

    async def save(self, tracker: DialogueStateTracker) -> None:
        await self.stream_events(tracker)
        self.store[tracker.sender_id] = list(tracker.events)

    async def stream_events(self, tracker: DialogueStateTracker) -> None:
        """The events new since the last save to the event broker, as Rasa's store finds
        them (past as many as the last session kept had), without rebuilding that tracker."""
        if self.event_broker is None:
            return
        kept = self.store.get(tracker.sender_id) or []
        offset = len(kept) - _last_session_start(kept)
        await self._stream_new_events(self.event_broker, list(tracker.events)[offset:], tracker.sender_id)

    async def _retrieve(self, sender_id: str, fetch_all_sessions: bool) -> DialogueStateTracker | None:
        """The tracker as Rasa's in-memory store rebuilds it from its JSON: all the events
        replayed, or those of the last session as `get_trackers_for_conversation_sessions`
        cuts them."""
        events = self.store.get(sender_id)
        if not events:
            return None
        start = 0 if fetch_all_sessions else _last_session_start(events)
        if start == 0:
            tracker = self.init_tracker(sender_id)
            tracker.recreate_from_dialogue(Dialogue(sender_id, events))
            return tracker
        return DialogueStateTracker.from_events(
            sender_id, events[start:], self.domain.slots, max_event_history=self.max_event_history
        )


def _last_session_start(events: list[Event]) -> int:
    """Where the last session begins: its `action_session_start`, or 0."""
    for index in range(len(events) - 1, 0, -1):
        event = events[index]
        if isinstance(event, ActionExecuted) and event.action_name == ACTION_SESSION_START_NAME:
            return index
    return 0


T = TypeVar("T")
LONGEST_WAIT = 2.0


CONVERSATIONS_KEPT = 512  # conversations whose rows a Rasa server keeps read, the least recently used dropped


@dataclass
class _Read:
    """A conversation's rows as far as they were read: the highest row id, the start of its
    last session (the latest `session_started`'s time, None before one), and the events of
    that session with their rows' times, in row order."""

    last_id: int
    session_start: float | None
    events: list[tuple[float | None, Event]]


class PatientSQLTrackerStore(SQLTrackerStore):
    def __init__(self, *args: Any, patience_seconds: float = 20.0, retry_seconds: float = 0.25, **kwargs: Any) -> None:
        self.patience_seconds = float(patience_seconds)
        self.retry_seconds = float(retry_seconds)
        self._read: OrderedDict[str, _Read] = OrderedDict()
        super().__init__(*args, **kwargs)

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        return await self._patiently("read", lambda: self._retrieve_last_session(sender_id))

    async def _retrieve_last_session(self, sender_id: str) -> DialogueStateTracker | None:
        """SQLTrackerStore.retrieve of Rasa 3.6 (the events since the latest `session_started`
        by time, or all, in row order), reading only the rows added since this server last
        read the conversation. Rows are only ever added (another server's turns too), so
        those after the highest id read are all that is new."""
        kept = self._read.pop(sender_id, None)
        with self.session_scope() as session:
            query = session.query(self.SQLEvent).filter(self.SQLEvent.sender_id == sender_id)
            if kept is not None:
                query = query.filter(self.SQLEvent.id > kept.last_id)
            rows = query.order_by(self.SQLEvent.id).all()
        read = _carried_on(kept, rows)
        if read is None:
            return None
        self._read[sender_id] = read
        if len(self._read) > CONVERSATIONS_KEPT:
            self._read.popitem(last=False)
        events = [event for _time, event in read.events]
        if not (self.domain and events):
            return None
        return DialogueStateTracker.from_events(sender_id, events, self.domain.slots)

    async def retrieve_full_tracker(self, sender_id: str) -> DialogueStateTracker | None:
        return await self._patiently(
            "read", lambda: super(PatientSQLTrackerStore, self).retrieve_full_tracker(sender_id)
        )

    async def save(self, tracker: DialogueStateTracker) -> None:
        await self._patiently("save", lambda: self._save(tracker))

    async def _save(self, tracker: DialogueStateTracker) -> None:
        """SQLTrackerStore.save of Rasa 3.6, giving the event broker the events it writes.
        Rasa's `stream_events` works them out by reading the whole conversation back from
        the database and rebuilding it first, on every save; the events written are the
        same (past as many as the last session has), counted once here."""
        with self.session_scope() as session:
            events = list(self._additional_events(session, tracker))
            read = self._read.get(tracker.sender_id)
            if read is not None and len(tracker.events) - len(events) != len(read.events):
                # rows this server has not read (two servers in one turn, Redis down): read it all again
                del self._read[tracker.sender_id]
            if self.event_broker is not None:
                await self._stream_new_events(self.event_broker, events, tracker.sender_id)
            for event in events:
                data = event.as_dict()
                session.add(
                    self.SQLEvent(
                        sender_id=tracker.sender_id,
                        type_name=event.type_name,
                        timestamp=data.get("timestamp"),
                        intent_name=data.get("parse_data", {}).get("intent", {}).get(INTENT_NAME_KEY),
                        action_name=data.get("name"),
                        data=json.dumps(data),
                    )
                )
            session.commit()

    async def _patiently(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        deadline, wait, tries = time.monotonic() + self.patience_seconds, self.retry_seconds, 0
        while True:
            try:
                result = await attempt()
            except DBAPIError as error:
                if not _database_away(error) or time.monotonic() + wait > deadline:
                    raise
                tries += 1
                if tries == 1:
                    log.warning("tracker store: the database does not answer (%s); trying to %s again for up to "
                                "%g s", type(error.orig).__name__, what, self.patience_seconds)  # fmt: skip
                await asyncio.sleep(wait)
                wait = min(LONGEST_WAIT, wait * 2)
                continue
            if tries:
                log.warning("tracker store: the database answers again (%s after %d tries)", what, tries)
            return result


def _carried_on(kept: _Read | None, rows: list[Any]) -> _Read | None:
    """The conversation read so far with `rows` (the rows after it, in id order) added: the
    last session's start moved to a later `session_started`, the events before it let go,
    each row's event parsed as Rasa parses it; None for a conversation with no rows."""
    if kept is None and not rows:
        return None
    if not rows:
        return kept
    start = kept.session_start if kept is not None else None
    for row in rows:
        if row.type_name == SessionStarted.type_name and row.timestamp is not None:
            start = row.timestamp if start is None else max(start, row.timestamp)
    events = list(kept.events) if kept is not None else []
    if kept is not None and start != kept.session_start:
        events = [(time, event) for time, event in events if _in_session(time, start)]
    for row in rows:
        if _in_session(row.timestamp, start):
            events += [(row.timestamp, event) for event in deserialise_events([json.loads(row.data)])]
    return _Read(rows[-1].id, start, events)


def _in_session(time: float | None, start: float | None) -> bool:
    """Rasa's filter of a row by the last session's start, NULLs as SQL treats them."""
    return start is None or (time is not None and time >= start)


def _database_away(error: DBAPIError) -> bool:
    return isinstance(error, OperationalError) or error.connection_invalidated
