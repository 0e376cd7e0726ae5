"""Production's tracker store waits out a PostgreSQL restart: a conversation read or saved
meanwhile is the same conversation afterwards, not a new empty one (Rasa's fail-safe
would start it again from nothing, or keep the turn in memory only)."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Iterator

import pytest
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy.exc import OperationalError

from bot.tracker_store import PatientSQLTrackerStore
from tests.event_stream import wait_for
from tests.pg_instance import PostgresInstance

DOMAIN = Domain.load("domain.yml")


@pytest.fixture()
def postgres() -> Iterator[PostgresInstance]:
    if os.environ.get("SKIP_POSTGRES") == "1":
        pytest.skip("SKIP_POSTGRES=1: PostgreSQL tests skipped on request")
    with PostgresInstance() as instance:
        yield instance


def _store(postgres: PostgresInstance, patience: float) -> PatientSQLTrackerStore:
    return PatientSQLTrackerStore(
        domain=DOMAIN, dialect="postgresql", host="127.0.0.1", port=postgres.port, db="postgres",
        username="postgres", patience_seconds=patience,
    )  # fmt: skip


def _conversation(sender: str, *texts: str) -> DialogueStateTracker:
    tracker = DialogueStateTracker(sender, DOMAIN.slots)
    for text in texts:
        tracker.update(UserUttered(text, {"name": "complain", "confidence": 0.9}))
        tracker.update(ActionExecuted("action_listen"))
    return tracker


def _texts(tracker: DialogueStateTracker | None) -> list[str]:
    assert tracker is not None
    return [event.text for event in tracker.events if isinstance(event, UserUttered)]


def test_a_turn_during_a_restart_waits_for_the_database_and_keeps_the_conversation(postgres, caplog) -> None:
    store = _store(postgres, patience=60)
    asyncio.run(store.save(_conversation("c1", "抄表员态度太差了")))
    postgres.stop()
    caplog.set_level(logging.WARNING, logger="bot.tracker_store")
    read: list[DialogueStateTracker | None] = []
    reader = threading.Thread(target=lambda: read.append(asyncio.run(store.retrieve("c1"))))
    reader.start()
    wait_for(lambda: "the database does not answer" in caplog.text, "the store waiting", 30)
    postgres.start()
    reader.join(60)
    assert _texts(read[0]) == ["抄表员态度太差了"]  # the same conversation, not a new one

    tracker = read[0]
    tracker.update(UserUttered("对", {"name": "affirm", "confidence": 0.9}))
    postgres.stop()
    saver = threading.Thread(target=lambda: asyncio.run(store.save(tracker)))
    saver.start()
    wait_for(lambda: caplog.text.count("the database does not answer") == 2, "the save waiting", 30)
    postgres.start()
    saver.join(60)
    assert _texts(asyncio.run(store.retrieve("c1"))) == ["抄表员态度太差了", "对"]  # saved, not in memory only
    assert "the database answers again" in caplog.text


def test_beyond_its_patience_the_store_gives_up_with_the_error(postgres) -> None:
    store = _store(postgres, patience=1)
    postgres.stop()
    try:
        with pytest.raises(OperationalError):
            asyncio.run(store.retrieve("c2"))
    finally:
        postgres.start()
