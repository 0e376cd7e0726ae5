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
(bot/rasa_speedups.py) recognise what they already did.

PatientSQLTrackerStore, production's: Rasa's SQL tracker store, waiting out a database
restart instead of forgetting, and handing the event broker the events it saves without
reading the whole conversation back first.

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
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import InMemoryTrackerStore, SQLTrackerStore
from rasa.shared.core.constants import ACTION_SESSION_START_NAME
from rasa.shared.core.conversation import Dialogue
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, Event
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


class PatientSQLTrackerStore(SQLTrackerStore):
    def __init__(self, *args: Any, patience_seconds: float = 20.0, retry_seconds: float = 0.25, **kwargs: Any) -> None:
        self.patience_seconds = float(patience_seconds)
        self.retry_seconds = float(retry_seconds)
        super().__init__(*args, **kwargs)

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        return await self._patiently("read", lambda: super(PatientSQLTrackerStore, self).retrieve(sender_id))

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


def _database_away(error: DBAPIError) -> bool:
    return isinstance(error, OperationalError) or error.connection_invalidated
