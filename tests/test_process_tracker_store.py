"""The embedded default's tracker store keeps the conversation's event objects instead of a
JSON text: what it gives back is what Rasa's in-memory store gives back, a conversation of
one session or of several, and a model swap keeps it. Both stores hand the event broker the
events Rasa's stores hand it, without reading the conversation back to find them."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import InMemoryTrackerStore, SQLTrackerStore, TrackerStore
from rasa.shared.core.constants import ACTION_LISTEN_NAME, ACTION_SESSION_START_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ActionReverted,
    Event,
    Restarted,
    SessionStarted,
    SlotSet,
    UserUtteranceReverted,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker, EventVerbosity

from bot.tracker_store import PatientSQLTrackerStore, ProcessTrackerStore


def _session(*events: Event) -> list[Event]:
    return [ActionExecuted(ACTION_SESSION_START_NAME), SessionStarted(), ActionExecuted(ACTION_LISTEN_NAME), *events]


def _conversations(stories: list[list[Event]]) -> list[list[Event]]:
    """Long conversations made of the project's stories: one session; three sessions; with a
    restart and reverted turns; a conversation that does not begin with a session start."""
    joined = [event for story in stories[:12] for event in story]
    return [
        _session(*joined),
        _session(*stories[0]) + _session(*stories[1]) + _session(*stories[2], *stories[3]),
        _session(*stories[4], UserUtteranceReverted(), ActionReverted(), *stories[5], Restarted(), *stories[6]),
        [ActionExecuted(ACTION_LISTEN_NAME), *stories[7]],
    ]


def _saved(store: TrackerStore, sender: str, events: list[Event], domain: Domain) -> None:
    asyncio.run(store.save(DialogueStateTracker.from_events(sender, events, domain.slots)))


def _read(store: TrackerStore, sender: str, whole: bool) -> DialogueStateTracker:
    tracker = asyncio.run(store.retrieve_full_tracker(sender) if whole else store.retrieve(sender))
    assert tracker is not None
    return tracker


@pytest.mark.parametrize("whole", [False, True], ids=["last session", "all sessions"])
def test_a_conversation_reads_back_as_rasa_s_in_memory_store_gives_it(story_events, whole) -> None:
    domain, stories = story_events
    ours, rasa = ProcessTrackerStore(domain), InMemoryTrackerStore(domain)
    for events in _conversations(stories):
        sender = f"process-{uuid.uuid4().hex}"
        _saved(ours, sender, events, domain)
        _saved(rasa, sender, events, domain)
        kept, expected = _read(ours, sender, whole), _read(rasa, sender, whole)
        assert kept.current_state(EventVerbosity.ALL) == expected.current_state(EventVerbosity.ALL)
        assert kept.past_states(domain) == expected.past_states(domain)
        assert kept.active_loop_name == expected.active_loop_name and kept.latest_action == expected.latest_action


def test_only_the_last_session_is_given_for_a_turn(story_events) -> None:
    domain, stories = story_events
    store, sender = ProcessTrackerStore(domain), f"process-{uuid.uuid4().hex}"
    _saved(store, sender, _session(*stories[0]) + _session(SlotSet("frustration", 2.0), *stories[1]), domain)

    tracker = _read(store, sender, whole=False)
    assert [type(e) for e in list(tracker.events)[:2]] == [ActionExecuted, SessionStarted]
    assert sum(isinstance(e, SessionStarted) for e in tracker.events) == 1
    assert tracker.get_slot("frustration") == 2.0
    assert sum(isinstance(e, SessionStarted) for e in _read(store, sender, whole=True).events) == 2


def test_a_turn_added_after_saving_is_not_kept_until_saved(story_events) -> None:
    domain, stories = story_events
    store, sender = ProcessTrackerStore(domain), f"process-{uuid.uuid4().hex}"
    tracker = DialogueStateTracker.from_events(sender, _session(*stories[0]), domain.slots)
    asyncio.run(store.save(tracker))
    saved = len(tracker.events)

    tracker.update(UserUttered("还有别的事", {"name": "inform", "confidence": 0.9}))
    assert len(_read(store, sender, whole=False).events) == saved
    asyncio.run(store.save(tracker))
    assert _read(store, sender, whole=False).latest_message.text == "还有别的事"


def test_a_new_store_after_a_model_swap_has_the_conversation(story_events) -> None:
    domain, stories = story_events
    sender = f"process-{uuid.uuid4().hex}"
    _saved(ProcessTrackerStore(domain), sender, _session(*stories[0]), domain)

    again = ProcessTrackerStore(domain)
    assert sender in asyncio.run(again.keys())
    assert len(_read(again, sender, whole=False).events) == len(_session(*stories[0]))
    assert asyncio.run(again.retrieve("nobody-" + uuid.uuid4().hex)) is None


# --- the events handed to the event broker ----------------------------------------------


class _Recorder(EventBroker):
    """An event broker that keeps what it is given."""

    def __init__(self) -> None:
        self.published: list[dict] = []

    def publish(self, event: dict) -> None:
        self.published.append(event)


def _turns(stories: list[list[Event]]) -> list[list[Event]]:
    """A conversation saved turn by turn: two sessions, the second begun halfway."""
    turns = [_session(*stories[0][:3]), stories[0][3:], stories[1]]
    return [*turns, _session(*stories[2]), stories[3], stories[4]]


def _published_turn_by_turn(store: TrackerStore, domain: Domain, turns: list[list[Event]]) -> list[dict]:
    sender = "broker-conversation"
    for turn in turns:
        tracker = asyncio.run(store.retrieve(sender)) or DialogueStateTracker(sender, domain.slots)
        for event in turn:
            tracker.update(event)
        asyncio.run(store.save(tracker))
    return store.event_broker.published


def _sql(store_class: type[SQLTrackerStore], domain: Domain, path: Path) -> SQLTrackerStore:
    return store_class(domain, dialect="sqlite", db=str(path), event_broker=_Recorder())


def test_the_sql_store_hands_the_broker_the_events_rasa_s_hands_it_without_reading_back(story_events, tmp_path) -> None:
    domain, stories = story_events
    ours = _sql(PatientSQLTrackerStore, domain, tmp_path / "ours.db")
    rasa = _sql(SQLTrackerStore, domain, tmp_path / "rasa.db")
    read_back, turns = [], _turns(stories)
    ours.retrieve = _counting(ours.retrieve, read_back)

    published = _published_turn_by_turn(ours, domain, turns)
    assert published == _published_turn_by_turn(rasa, domain, turns)
    assert len(read_back) == len(turns)  # the turns' own reads, none to save
    ours_now, rasa_now = asyncio.run(ours.retrieve_full_tracker("broker-conversation")), asyncio.run(
        rasa.retrieve_full_tracker("broker-conversation")
    )
    assert ours_now.current_state(EventVerbosity.ALL) == rasa_now.current_state(EventVerbosity.ALL)
    assert len(published) == sum(len(turn) for turn in turns)


def test_the_process_store_hands_the_broker_the_events_rasa_s_hands_it(story_events) -> None:
    domain, stories = story_events
    ours, rasa = ProcessTrackerStore(domain, _Recorder()), InMemoryTrackerStore(domain, _Recorder())
    turns = _turns(stories)
    published = _published_turn_by_turn(ours, domain, turns)
    assert published == _published_turn_by_turn(rasa, domain, turns)
    assert len(published) == sum(len(turn) for turn in turns)


def _counting(read: Any, calls: list[str]) -> Any:
    async def counted(sender_id: str) -> Any:
        calls.append(sender_id)
        return await read(sender_id)

    return counted


# --- the SQL store reads only the rows a conversation gained -----------------------------


def _fresh(events: list[Event]) -> list[Event]:
    """The events made anew one after another, as a conversation makes them (a session keeps
    only what is not older than its start)."""
    start, made = time.time(), []
    for n, event in enumerate(events):
        made.append(Event.from_parameters({**event.as_dict(), "timestamp": start + n / 1000}))
    return made


def _state(tracker: DialogueStateTracker | None) -> dict:
    assert tracker is not None
    return tracker.current_state(EventVerbosity.ALL)


def test_two_servers_taking_turns_read_the_conversation_as_rasa_reads_it(story_events, tmp_path) -> None:
    """Two Rasa servers (two stores on one database) take the turns of a conversation in
    turn, a new session begins halfway; after every turn each reads what Rasa's store reads."""
    domain, stories = story_events
    path = tmp_path / "trackers.db"
    servers = [_sql(PatientSQLTrackerStore, domain, path), _sql(PatientSQLTrackerStore, domain, path)]
    rasa, sender = _sql(SQLTrackerStore, domain, path), "two-servers"
    queries = _count_queries(servers[0])
    for index, turn in enumerate([*_turns(stories), stories[5], _session(*stories[6]), stories[7]]):
        server = servers[index % 2]
        tracker = asyncio.run(server.retrieve(sender)) or DialogueStateTracker(sender, domain.slots)
        for event in _fresh(turn):
            tracker.update(event)
        asyncio.run(server.save(tracker))
        expected = _state(asyncio.run(rasa.retrieve(sender)))
        assert [_state(asyncio.run(store.retrieve(sender))) for store in servers] == [expected, expected]
    reads = [query for query in queries if "ORDER BY events.id" in query and "count(" not in query]
    whole = [query for query in reads if "events.id >" not in query]
    assert len(whole) == 2 and len(reads) > 10  # before the conversation began and its first read: then only new rows


def test_a_row_the_server_missed_is_read_at_its_next_turn(story_events, tmp_path) -> None:
    """A row committed late with an id below the highest one read (two servers in one turn
    while Redis was down): the next save sees the count differ and the conversation is read
    again from all its rows."""
    domain, stories = story_events
    path, sender = tmp_path / "trackers.db", "late-row"
    ours, rasa = _sql(PatientSQLTrackerStore, domain, path), _sql(SQLTrackerStore, domain, path)
    _saved(rasa, sender, _fresh(_session(*stories[0])), domain)
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        late = connection.execute(sqlalchemy.text("SELECT * FROM events ORDER BY id LIMIT 1 OFFSET 4")).mappings().one()
        connection.execute(sqlalchemy.text("DELETE FROM events WHERE id = :id"), {"id": late["id"]})
    missing = len(asyncio.run(ours.retrieve(sender)).events)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text(
            "INSERT INTO events (id, sender_id, type_name, timestamp, intent_name, action_name, data) "
            "VALUES (:id, :sender_id, :type_name, :timestamp, :intent_name, :action_name, :data)"
        ), dict(late))  # fmt: skip

    tracker = asyncio.run(ours.retrieve(sender))
    assert len(tracker.events) == missing  # not seen yet: its id is below the highest read
    tracker.update(SlotSet("frustration", 1.0))
    asyncio.run(ours.save(tracker))
    again = asyncio.run(ours.retrieve(sender))
    assert len(again.events) == missing + 1  # the late row, read at last
    assert _state(again) == _state(asyncio.run(rasa.retrieve(sender)))


def _count_queries(store: SQLTrackerStore) -> list[str]:
    """The statements reading the events table that `store` sends."""
    seen: list[str] = []

    def noted(_connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM events" in statement and "count" not in statement:
            seen.append(statement)

    sqlalchemy.event.listen(store.engine, "before_cursor_execute", noted)
    return seen
