"""The record of messages taken (bot/dedup.py) beyond what WeChat uses of it
(tests/test_wechat_dedup.py): Rasa's message dicts kept as given, a new expiry with a move,
a failed claim released, channels apart, the database standing in while Redis is down, and
the migration that made WeChat's table every channel's. Redis is a private redis-server."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import select, text

from bot.db import engine_for, session_factory
from bot.dedup import (
    ANSWERED,
    PROCESSING,
    DatabaseDedup,
    Entry,
    FallbackDedup,
    InboundMessageRow,
    MemoryDedup,
    RedisDedup,
)
from bot.schema import alembic_config, upgrade
from tests.private_redis import PrivateRedis


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path).start()
    yield server
    server.kill()


@pytest.fixture(params=["database", "redis", "memory"])
def store(request):
    """Each store (the database one on SQLite)."""
    if request.param == "database":
        return DatabaseDedup(session_factory(request.getfixturevalue("sqlite_url")), ttl_seconds=600, namespace="rest")
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        return RedisDedup(server.client(), ttl_seconds=600, namespace="rest")
    return MemoryDedup(ttl_seconds=600)


def key() -> str:
    return uuid.uuid4().hex


def until_gone(store, k: str) -> None:
    deadline = time.monotonic() + 5
    while store.get(k) is not None:
        assert time.monotonic() < deadline, "the entry did not expire"
        time.sleep(0.05)


def test_replies_are_kept_as_the_channel_gave_them(store):
    replies = [
        {"recipient_id": "c1", "text": "您好，请问有什么可以帮您？", "buttons": []},
        {"recipient_id": "c1", "custom": {"cards": [], "meta": {}, "n": 1.5, "ok": True, "none": None}},
    ]
    k = key()
    store.claim(k)
    assert store.move(k, PROCESSING, ANSWERED, replies, keep_seconds=600)
    assert store.get(k) == Entry(ANSWERED, tuple(replies))  # empty lists stay lists, not {}


def test_a_move_may_set_a_new_expiry_and_a_lapsed_claim_is_claimed_again(store):
    k = key()
    assert store.claim(k)
    assert store.move(k, PROCESSING, PROCESSING, keep_seconds=1)  # a claim renewed for a second only
    until_gone(store, k)
    assert store.move(k, PROCESSING, ANSWERED, ["late"]) is False  # an expired entry is absent
    assert store.claim(k) is True


def test_a_failed_claim_is_released_but_an_answer_is_not(store):
    failed, answered = key(), key()
    store.claim(failed)
    store.release(failed)
    assert store.get(failed) is None and store.claim(failed) is True

    store.claim(answered)
    store.move(answered, PROCESSING, ANSWERED, [{"text": "好的"}])
    store.release(answered)
    assert store.get(answered) == Entry(ANSWERED, ({"text": "好的"},))


def test_channels_are_apart(redis_server, sqlite_url):
    k = key()
    for make in (
        lambda namespace: DatabaseDedup(session_factory(sqlite_url), 600, namespace),
        lambda namespace: RedisDedup(redis_server.client(), 600, namespace),
    ):
        rest, wechat = make("rest"), make("wechat")
        assert rest.claim(k) and wechat.claim(k)
        rest.move(k, PROCESSING, ANSWERED, ["rest"])
        assert wechat.get(k) == Entry(PROCESSING)


def test_the_database_stands_in_while_redis_is_down(redis_server, sqlite_url, caplog):
    caplog.set_level(logging.WARNING, logger="bot.dedup")
    sessions = session_factory(sqlite_url)
    store = FallbackDedup(
        RedisDedup(redis_server.client(), 600, "rest"), DatabaseDedup(sessions, 600, "rest"), retry_seconds=0.2
    )
    in_redis, in_database, after = key(), key(), key()
    assert store.claim(in_redis) and not store.degraded

    redis_server.kill()
    assert store.claim(in_database) and store.degraded
    assert store.claim(in_database) is False  # the database remembers it
    assert store.move(in_database, PROCESSING, ANSWERED, [{"text": "好的"}])
    assert store.get(in_database) == Entry(ANSWERED, ({"text": "好的"},))
    assert store.get(in_redis) is None  # what Redis held is unknown meanwhile (the tracker knows)
    with sessions() as session:
        row = select(InboundMessageRow.state).where(InboundMessageRow.message_key == f"rest:{in_database}")
        assert session.scalar(row) == ANSWERED

    redis_server.start()
    deadline = time.monotonic() + 5
    while store.degraded:
        assert time.monotonic() < deadline, "Redis was not used again"
        store.get(after)
        time.sleep(0.05)
    assert store.claim(after)
    assert redis_server.client().hget(f"inbound:rest:{after}", "state") == PROCESSING.encode()
    said = [r.getMessage() for r in caplog.records if r.name == "bot.dedup"]
    assert len(said) == 2 and "using the database" in said[0] and "Redis is back" in said[1]


def test_migration_0009_keeps_wechats_entries_down_and_up(empty_database_url):
    k = key()
    DatabaseDedup(session_factory(empty_database_url), 600, "wechat").claim(k)
    DatabaseDedup(session_factory(empty_database_url), 600, "rest").claim(k)
    engine = engine_for(empty_database_url)

    command.downgrade(alembic_config(empty_database_url), "0008")
    with engine.connect() as connection:
        assert list(connection.execute(text("SELECT message_key, state FROM wechat_messages"))) == [(k, PROCESSING)]
    upgrade(empty_database_url)
    assert DatabaseDedup(session_factory(empty_database_url), 600, "wechat").get(k) == Entry(PROCESSING)
