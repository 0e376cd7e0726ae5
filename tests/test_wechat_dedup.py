"""The record of messages already taken, on each store the channel can use: the database
(SQLite and PostgreSQL), Redis (the server on 127.0.0.1:6379) and memory. A message is
claimed once, its state moves only from the state expected, and an expired entry is gone."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select, update

import bot.console.models
import bot.handoff.models
import bot.models
import bot.tickets.models  # noqa: F401  (every table in Base.metadata, as the migrations see them)
from bot import clock
from bot.db import Base, engine_for, session_factory
from bot.dedup import (
    ANSWERED,
    PROCESSING,
    DatabaseDedup,
    DedupUnavailable,
    Entry,
    FallbackDedup,
    InboundMessageRow,
    MemoryDedup,
    RedisDedup,
    store_for,
)
from bot.schema import alembic_config, upgrade
from bot.wechat.inbox import PUSH, PUSHED

REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_client():
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}")
    return client


@pytest.fixture(params=["database", "redis", "memory"])
def store(request, database_url) -> Iterator:
    """Each store; the database one on SQLite and on PostgreSQL (the others run twice, alike)."""
    if request.param == "database":
        yield DatabaseDedup(session_factory(database_url), ttl_seconds=600, namespace="wechat")
    elif request.param == "redis":
        client = redis_client()
        redis_store = RedisDedup(client, ttl_seconds=600, namespace=f"test{uuid.uuid4().hex}")
        yield redis_store
        for key in client.scan_iter(redis_store.prefix + "*"):
            client.delete(key)
    else:
        yield MemoryDedup(ttl_seconds=600)


def key() -> str:
    return f"msg:{uuid.uuid4().int % 10**19}"


def test_a_message_is_claimed_once(store):
    k = key()
    assert store.claim(k) is True
    assert store.claim(k) is False
    assert store.claim(k) is False
    assert store.get(k) == Entry(PROCESSING)
    assert store.get(key()) is None


def test_states_move_only_from_the_state_expected(store):
    k = key()
    store.claim(k)
    assert store.move(k, PUSH, PUSHED) is False  # not in push
    assert store.move(k, PROCESSING, ANSWERED, ["您好", "请提供户号"]) is True
    assert store.get(k) == Entry(ANSWERED, ("您好", "请提供户号"))
    assert store.move(k, PROCESSING, PUSH) is False  # the answer won: the waiting request gives the reply
    assert store.get(k).state == ANSWERED
    assert store.move(key(), PROCESSING, PUSH) is False  # unknown message


def test_a_move_without_replies_keeps_them(store):
    k = key()
    store.claim(k)
    store.move(k, PROCESSING, PUSH)
    assert store.move(k, PUSH, PUSHED) is True
    assert store.get(k) == Entry(PUSHED, ())


def test_of_claims_at_the_same_time_exactly_one_wins(store):
    k = key()
    barrier = threading.Barrier(8)
    results: list[bool] = []

    def claim() -> None:
        barrier.wait()
        results.append(store.claim(k))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]


def test_of_the_answer_and_the_give_up_exactly_one_wins(store):
    for _ in range(20):
        k = key()
        store.claim(k)
        barrier = threading.Barrier(2)
        won: dict[str, bool] = {}

        def move(to: str, replies, won=won, k=k, barrier=barrier) -> None:
            barrier.wait()
            won[to] = store.move(k, PROCESSING, to, replies)

        threads = [
            threading.Thread(target=move, args=(ANSWERED, ["好的"])),
            threading.Thread(target=move, args=(PUSH, None)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(won.values()) == [False, True]
        assert store.get(k).state == (ANSWERED if won[ANSWERED] else PUSH)


# --- expiry --------------------------------------------------------------------------------


def test_an_expired_database_entry_is_ignored_claimed_again_and_purged(database_url):
    sessions = session_factory(database_url)
    store = DatabaseDedup(sessions, ttl_seconds=600, namespace="wechat")
    old, kept = key(), key()
    store.claim(old)
    store.claim(kept)
    with sessions.begin() as session:  # as if claimed eleven minutes ago
        session.execute(
            update(InboundMessageRow)
            .where(InboundMessageRow.message_key == f"wechat:{old}")
            .values(expires_at=clock.now() - timedelta(minutes=1))
        )
    assert store.get(old) is None
    assert store.claim(old) is True  # a new message after all
    assert store.get(old) == Entry(PROCESSING)

    with sessions.begin() as session:
        session.execute(update(InboundMessageRow).where(InboundMessageRow.message_key == f"wechat:{old}")
                        .values(expires_at=clock.now() - timedelta(minutes=1)))  # fmt: skip
    fresh = DatabaseDedup(sessions, ttl_seconds=600, namespace="wechat")  # a new store purges on its first claim
    fresh.claim(key())
    with sessions() as session:
        keys = set(session.scalars(select(InboundMessageRow.message_key)))
        expired = session.scalar(select(func.count()).where(InboundMessageRow.expires_at <= clock.now()))
    assert f"wechat:{old}" not in keys and f"wechat:{kept}" in keys and expired == 0


def test_a_redis_entry_expires():
    client = redis_client()
    store = RedisDedup(client, ttl_seconds=600, namespace=f"test{uuid.uuid4().hex}")
    prefix = store.prefix
    k = key()
    store.claim(k)
    assert 590 < client.ttl(prefix + k) <= 600  # SET NX with the expiry
    store.move(k, PROCESSING, ANSWERED, ["好的"])
    assert 590 < client.ttl(prefix + k) <= 600  # a move keeps it
    client.pexpire(prefix + k, 1)
    deadline = time.monotonic() + 5
    while client.exists(prefix + k) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.get(k) is None
    assert store.claim(k) is True


def test_unreachable_stores_say_so(tmp_path):
    import redis

    down = RedisDedup(redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5), 60, "wechat")
    with pytest.raises(DedupUnavailable):
        down.claim(key())
    no_table = DatabaseDedup(session_factory(f"sqlite:///{tmp_path / 'empty.db'}"), 60, "wechat")
    with pytest.raises(DedupUnavailable):
        no_table.claim(key())


def test_redis_is_used_when_configured(sqlite_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    assert isinstance(store_for(REDIS_URL, 60, "wechat"), FallbackDedup)  # Redis, and the database while it is down
    assert isinstance(store_for("", 60, "wechat"), DatabaseDedup)


# --- the migration ------------------------------------------------------------------------------


def test_migration_0006_adds_and_removes_the_wechat_tables(empty_database_url):
    """(0009 renames wechat_messages to inbound_messages, for every channel.)"""
    config = alembic_config(empty_database_url)
    tables = set(inspect(engine_for(empty_database_url)).get_table_names())
    assert {"wechat_bindings", "inbound_messages"} <= tables
    command.downgrade(config, "0005")
    tables = set(inspect(engine_for(empty_database_url)).get_table_names())
    assert not {"wechat_bindings", "wechat_messages", "inbound_messages"} & tables and "staff_users" in tables
    upgrade(empty_database_url)
    assert {"wechat_bindings", "inbound_messages"} <= set(inspect(engine_for(empty_database_url)).get_table_names())
    with engine_for(empty_database_url).connect() as connection:  # the migration is the models
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
