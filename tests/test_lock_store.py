"""Two Rasa servers must never run one conversation's turn at the same time, and Redis
being down must not stop the bot.

A "server" here is a thread with its own event loop, its own lock store (its own Redis
connections) and its own SQL tracker store on one shared SQLite file, as Rasa servers share
the tracker database. A turn is what Rasa's processor does under the lock: read the
tracker, add the customer's message, work, save. Redis is a private redis-server on a free
port (tests/private_redis.py), killed and restarted by the tests.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from rasa.core.agent import load_agent
from rasa.core.lock import TicketLock
from rasa.core.lock_store import LockError, LockStore, RedisLockStore
from rasa.core.tracker_store import SQLTrackerStore
from rasa.core.utils import AvailableEndpoints, number_of_sanic_workers
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import UserUttered
from rasa.utils.endpoints import EndpointConfig

from bot.lock_store import AtomicRedisLockStore
from tests.private_redis import PrivateRedis

# every Redis command 30 ms slower: a network between the servers and Redis, and the window
# in which two read-modify-writes of Rasa's store interleave
LATENCY = 0.03
# a turn's work between reading the tracker and saving it (NLU, policies, actions): long
# enough that two servers let in together both read before either saves, on a slow machine too
TURN = 0.15


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path).start()
    yield server
    server.kill()


@pytest.fixture
def settings(redis_server: PrivateRedis) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": redis_server.port, "db": 0}


@pytest.fixture
def quick(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings that notice a dead Redis fast and try it again soon (production: about 1 s and 5 s)."""
    return {**settings, "socket_timeout": 0.3, "retry_seconds": 0.2}


# --- the race ----------------------------------------------------------------------------------


@dataclass
class Visits:
    """Who was inside one conversation's turn, and when."""

    entries: list[tuple[int, int]] = field(default_factory=list)  # (round, ticket) in order of entry
    crowded_rounds: set[int] = field(default_factory=set)  # rounds in which two were inside at once
    seen: list[int] = field(default_factory=list)  # customer messages each turn found in the tracker
    most_inside: int = 0
    _inside: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def enter(self, round_: int, ticket: int) -> None:
        with self._lock:
            self._inside += 1
            self.most_inside = max(self.most_inside, self._inside)
            if self._inside > 1:
                self.crowded_rounds.add(round_)
            self.entries.append((round_, ticket))

    def leave(self) -> None:
        with self._lock:
            self._inside -= 1


def slowed(store: LockStore, latency: float) -> LockStore:
    """`store` with `latency` seconds added to each Redis command it sends."""
    execute = store.red.execute_command

    def slowly(*args: Any, **options: Any) -> Any:
        time.sleep(latency)
        return execute(*args, **options)

    store.red.execute_command = slowly
    return store


def trackers(path: Path) -> SQLTrackerStore:
    return SQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(path))


async def customer_messages(path: Path, sender: str) -> list[str]:
    tracker = await trackers(path).retrieve(sender)
    return [e.text for e in tracker.events if isinstance(e, UserUttered)] if tracker else []


def run_servers(
    make_store: Callable[[], LockStore], tracker_db: Path, servers: int, rounds: int, in_step: bool
) -> tuple[Visits, list[str]]:
    """`servers` threads take one conversation's lock `rounds` times each and run a turn in
    it; `in_step`: each round, all ask at the same moment (a customer's message and its
    retry reaching two servers together). What they did, and the messages the tracker kept."""
    sender = f"customer-{uuid.uuid4().hex[:8]}"
    asyncio.run(trackers(tracker_db).get_or_create_tracker(sender))
    barrier = threading.Barrier(servers, timeout=60)
    visits = Visits()

    def server(index: int) -> None:
        store, tracker_store = make_store(), trackers(tracker_db)

        async def serve() -> None:
            for round_ in range(rounds):
                if in_step:
                    await asyncio.to_thread(barrier.wait)
                async with store.lock(sender, lock_lifetime=30, wait_time_in_seconds=0.005) as lock:
                    visits.enter(round_, lock.now_serving)
                    tracker = await tracker_store.retrieve(sender)
                    visits.seen.append(sum(isinstance(e, UserUttered) for e in tracker.events))
                    tracker.update(UserUttered(f"server {index} round {round_}", {"name": "greet", "confidence": 1}))
                    await asyncio.sleep(TURN)
                    await tracker_store.save(tracker)
                    visits.leave()

        asyncio.run(serve())

    with ThreadPoolExecutor(servers) as pool:
        for done in [pool.submit(server, index) for index in range(servers)]:
            done.result(timeout=120)
    return visits, asyncio.run(customer_messages(tracker_db, sender))


def test_stock_redis_lock_store_lets_two_servers_into_one_conversation_blind_to_each_other(settings, tmp_path):
    """RasaHQ/rasa#9213 on the installed Rasa: two servers run turns of one conversation at
    once, and each answers from a conversation without the other's message. (Whether a
    message is then also lost depends on how the two saves interleave in the database, so
    the test does not count on it.) If this fails, the stock store no longer overlaps: check
    whether `AtomicRedisLockStore` is still needed."""
    servers, rounds = 3, 6
    visits, kept = run_servers(
        lambda: slowed(RedisLockStore(**settings), LATENCY), tmp_path / "trackers.db", servers, rounds, in_step=True
    )

    assert visits.most_inside >= 2 and visits.crowded_rounds, "no round had two servers inside one conversation"
    assert len(visits.entries) == servers * rounds
    assert len(set(visits.seen)) < len(visits.seen), "every turn saw every message before it after all"


def test_atomic_lock_store_lets_one_server_in_at_a_time_in_ticket_order_and_keeps_every_message(settings, tmp_path):
    """The same servers, the same slow Redis, the same simultaneous messages."""
    servers, rounds = 3, 6
    visits, kept = run_servers(
        lambda: slowed(AtomicRedisLockStore(**settings), LATENCY), tmp_path / "trackers.db", servers, rounds, True
    )

    assert visits.most_inside == 1 and not visits.crowded_rounds
    assert len(visits.entries) == servers * rounds, "a server lost its turn"
    tickets = [ticket for _, ticket in visits.entries]
    assert len(set(tickets)) == len(tickets), "a ticket was handed out twice"
    assert tickets == sorted(tickets), "a later ticket went in before an earlier one"
    assert visits.seen == list(range(servers * rounds)), "a turn ran without a message taken before it"
    assert sorted(kept) == sorted(f"server {s} round {r}" for s in range(servers) for r in range(rounds))


def test_atomic_lock_store_holds_when_the_servers_run_free(settings, tmp_path):
    """More servers, more rounds, no lockstep, Redis at full speed."""
    visits, kept = run_servers(lambda: AtomicRedisLockStore(**settings), tmp_path / "trackers.db", 5, 12, False)

    assert visits.most_inside == 1
    assert visits.seen == list(range(5 * 12))
    assert len(visits.entries) == len(kept) == 5 * 12


# --- lifetimes ---------------------------------------------------------------------------------


def _hold_and_die(settings: dict[str, Any], conversation_id: str, lifetime: float, inside: Any) -> None:
    """A server that takes the lock and hangs until it is killed."""

    async def hold() -> None:
        async with AtomicRedisLockStore(**settings).lock(conversation_id, lifetime, wait_time_in_seconds=0.01):
            inside.set()
            await asyncio.sleep(3600)

    asyncio.run(hold())


def test_a_dead_holder_blocks_only_until_its_lifetime_has_passed(settings):
    context = multiprocessing.get_context("fork")
    inside = context.Event()
    holder = context.Process(target=_hold_and_die, args=(settings, "conversation-dead", 1.0, inside))
    holder.start()
    try:
        assert inside.wait(15), "the holder never got the lock"
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # dies holding the lock: no cleanup runs
        holder.join(5)

    async def next_turn() -> None:
        async with AtomicRedisLockStore(**settings).lock("conversation-dead", 30, wait_time_in_seconds=0.02):
            pass

    started = time.monotonic()
    asyncio.run(next_turn())
    waited = time.monotonic() - started
    assert 0.4 < waited < 3, f"waited {waited:.2f} s for a holder with a 1 s lifetime"


async def _when(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never came true"
        await asyncio.sleep(0.01)


async def long_turn_then_next(holder: LockStore, other: LockStore, conversation: str, turn: float) -> list[str]:
    """`holder` runs a turn of `turn` seconds with a 0.6 s lifetime; `other` asks meanwhile."""
    order: list[str] = []

    async def long_turn() -> None:
        async with holder.lock(conversation, lock_lifetime=0.6, wait_time_in_seconds=0.01):
            order.append("long turn in")
            await asyncio.sleep(turn)
            order.append("long turn out")

    async def next_turn() -> None:
        await _when(lambda: bool(order))
        async with other.lock(conversation, lock_lifetime=10, wait_time_in_seconds=0.01):
            order.append("next in")

    await asyncio.gather(long_turn(), next_turn())
    return order


@pytest.mark.parametrize(
    ("store_class", "expected"),
    [
        (RedisLockStore, ["long turn in", "next in", "long turn out"]),  # the lifetime cut the turn short
        (AtomicRedisLockStore, ["long turn in", "long turn out", "next in"]),  # a live holder keeps it
    ],
)
def test_a_turn_longer_than_the_lifetime_keeps_its_conversation(settings, store_class, expected):
    order = asyncio.run(long_turn_then_next(store_class(**settings), store_class(**settings), "conversation-long", 2))
    assert order == expected


def test_a_waiter_gives_up_after_its_lifetime_and_leaves_no_ticket(settings):
    holder, waiter = AtomicRedisLockStore(**settings), AtomicRedisLockStore(**settings)

    async def scenario() -> float:
        async with holder.lock("conversation-busy", lock_lifetime=10, wait_time_in_seconds=0.01):
            started = time.monotonic()
            with pytest.raises(LockError):
                async with waiter.lock("conversation-busy", lock_lifetime=0.5, wait_time_in_seconds=0.01):
                    pass
            return time.monotonic() - started

    gave_up_after = asyncio.run(scenario())
    assert 0.4 < gave_up_after < 2
    assert holder.get_lock("conversation-busy") is None


def test_a_holder_back_after_its_lifetime_does_not_release_the_next_one(settings):
    store = AtomicRedisLockStore(**settings)
    stale = store.issue_ticket("conversation-late", lock_lifetime=0.2)  # holds, then hangs past its lifetime

    async def next_turn() -> int:
        await _when(lambda: store.get_lock("conversation-late") is None)  # the stale ticket lapsed
        async with store.lock("conversation-late", 30, wait_time_in_seconds=0.01) as ours:
            waiting = store.issue_ticket("conversation-late", 30)
            store.cleanup("conversation-late", stale)  # the hung server wakes up and cleans up
            lock = store.get_lock("conversation-late")
            assert [t.number for t in lock.tickets] == [ours.now_serving, waiting]
            assert stale < ours.now_serving < waiting
            assert lock.is_locked(waiting), "the waiting ticket went in while we were inside"
        return waiting

    waiting = asyncio.run(next_turn())
    assert store.is_someone_waiting("conversation-late")
    store.cleanup("conversation-late", waiting)
    assert store.get_lock("conversation-late") is None
    assert not store.is_someone_waiting("conversation-late")


# --- Rasa builds it ---------------------------------------------------------------------------


def test_rasa_builds_the_store_from_endpoints_yml(settings, tmp_path, monkeypatch):
    """`load_agent` (what `rasa run` calls) reads the lock store as endpoints.yml names it."""
    (tmp_path / "endpoints.yml").write_text(
        "lock_store:\n"
        "  type: bot.lock_store.AtomicRedisLockStore\n"
        f"  url: {settings['host']}\n"
        f"  port: {settings['port']}\n"
        "  db: 3\n"
        "  key_prefix: cluster1\n"
        "  use_ssl: false\n"
        "  socket_timeout: 1\n"
        "  retry_seconds: 2\n",
        encoding="utf-8",
    )
    endpoints = AvailableEndpoints.read_endpoints(str(tmp_path / "endpoints.yml"))
    with pytest.warns(UserWarning, match="no model"):
        agent = asyncio.run(load_agent(endpoints=endpoints))

    store = agent.lock_store
    assert isinstance(store, AtomicRedisLockStore)
    assert store.key_prefix == "cluster1:atomic_lock:"
    assert store.retry_seconds == 2
    connection = store.red.connection_pool.connection_kwargs
    assert (connection["port"], connection["db"], connection["socket_timeout"]) == (settings["port"], 3, 1)

    async def handle_message() -> None:
        async with store.lock("conversation-agent") as lock:  # as Agent.handle_message takes it
            assert isinstance(lock, TicketLock)
            assert store.is_someone_waiting("conversation-agent")

    asyncio.run(handle_message())
    assert store.get_lock("conversation-agent") is None

    monkeypatch.setenv("SANIC_WORKERS", "4")
    assert number_of_sanic_workers(endpoints.lock_store) == 4  # Rasa allows several workers with it


def test_lock_store_create_returns_the_atomic_store(settings):
    config = EndpointConfig(url=settings["host"], type="bot.lock_store.AtomicRedisLockStore", port=settings["port"])
    store = LockStore.create(config)

    assert isinstance(store, AtomicRedisLockStore)
    assert LockStore.create(store) is store


# --- Redis down: the degraded mode ------------------------------------------------------------


def queue_length(server: PrivateRedis, store: AtomicRedisLockStore, conversation: str) -> int:
    """The conversation's live tickets as Redis holds them."""
    return server.client().zcard(f"{store.key_prefix}{conversation}:queue")


async def until_back(store: AtomicRedisLockStore) -> None:
    """Turns of another conversation until one finds Redis again."""
    deadline = time.monotonic() + 10
    while store.degraded:
        assert time.monotonic() < deadline, "the store never went back to Redis"
        async with store.lock(f"someone-{uuid.uuid4().hex[:6]}", wait_time_in_seconds=0.01):
            pass
        await asyncio.sleep(0.05)


async def one_at_a_time(store: AtomicRedisLockStore, conversation: str, turns: int) -> Visits:
    visits = Visits()

    async def turn(number: int) -> None:
        async with store.lock(conversation, lock_lifetime=10, wait_time_in_seconds=0.01):
            visits.enter(0, number)
            await asyncio.sleep(0.02)
            visits.leave()

    await asyncio.gather(*(turn(n) for n in range(turns)))
    return visits


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "bot.lock_store" and r.levelno == logging.WARNING]


def test_redis_down_turns_go_on_one_at_a_time_per_process_and_redis_is_used_again_when_back(
    redis_server, quick, caplog
):
    caplog.set_level(logging.INFO, logger="bot.lock_store")
    store = AtomicRedisLockStore(**quick)

    async def scenario() -> None:
        async with store.lock("conversation-a"):
            assert queue_length(redis_server, store, "conversation-a") == 1
        assert not store.degraded

        redis_server.kill()
        visits = await one_at_a_time(store, "conversation-a", 5)
        assert store.degraded
        assert visits.most_inside == 1 and [n for _, n in visits.entries] == [0, 1, 2, 3, 4]  # in order, no error

        redis_server.start()
        await until_back(store)
        async with store.lock("conversation-b"):
            assert queue_length(redis_server, store, "conversation-b") == 1
        assert not store.degraded

    asyncio.run(scenario())
    said = warnings_of(caplog)
    assert len(said) == 2, said
    assert "DEGRADED MODE" in said[0] and "ConnectionError" in said[0]
    assert "Redis is back" in said[1]


def test_a_hung_redis_is_a_degraded_mode_too(redis_server, quick):
    store = AtomicRedisLockStore(**quick)

    async def scenario() -> float:
        redis_server.pause()
        try:
            started = time.monotonic()
            async with store.lock("conversation-hung"):
                pass
            async with store.lock("conversation-hung"):  # no second wait: Redis is not asked before retry_seconds
                pass
            return time.monotonic() - started
        finally:
            redis_server.resume()

    took = asyncio.run(scenario())
    assert store.degraded
    assert took < 0.3 + 0.2, f"{took:.2f} s: more than one socket timeout"


def test_tickets_left_by_the_outage_are_released_when_redis_is_back(tmp_path, quick):
    """A Redis that keeps its data (append-only file) comes back with the ticket this server
    could not release; the server releases it at once instead of letting it block the
    conversation for its lifetime (60 s here)."""
    durable = PrivateRedis(tmp_path, durable=True).start()
    quick = {**quick, "port": durable.port}
    server, other = AtomicRedisLockStore(**quick), AtomicRedisLockStore(**quick)

    async def scenario() -> float:
        async with server.lock("conversation-left", lock_lifetime=60):
            durable.kill()
        assert server.degraded
        durable.start()
        assert queue_length(durable, server, "conversation-left") == 1  # back with the ticket
        await until_back(server)
        assert queue_length(durable, server, "conversation-left") == 0
        started = time.monotonic()
        async with other.lock("conversation-left", lock_lifetime=60, wait_time_in_seconds=0.01):
            return time.monotonic() - started

    try:
        assert asyncio.run(scenario()) < 1
    finally:
        durable.kill()


async def turn_and_another_server(
    holder: AtomicRedisLockStore, other: AtomicRedisLockStore, conversation: str, during: Callable[[], Awaitable[None]]
) -> list[str]:
    """`holder` runs a turn (0.9 s lifetime: a renewal every 0.3 s) in which `during`
    happens, then keeps the conversation 1.5 s more; meanwhile `other` (another server) and
    `holder` itself ask for it."""
    order: list[str] = []

    async def turn() -> None:
        async with holder.lock(conversation, lock_lifetime=0.9, wait_time_in_seconds=0.01):
            order.append("turn in")
            await during()
            order.append("asking")
            await asyncio.sleep(1.5)
            order.append("turn out")

    async def next_turn(store: AtomicRedisLockStore, name: str) -> None:
        await _when(lambda: "asking" in order)
        async with store.lock(conversation, lock_lifetime=10, wait_time_in_seconds=0.01):
            order.append(name)

    await asyncio.gather(turn(), next_turn(other, "other server in"), next_turn(holder, "same server in"))
    return order


def test_a_running_turn_whose_ticket_redis_lost_puts_it_back(redis_server, quick, caplog):
    """Redis restarts empty in the middle of a turn: the turn's next renewal puts its ticket
    back, and neither another server nor this one gets in before the turn ends."""
    holder, other = AtomicRedisLockStore(**quick), AtomicRedisLockStore(**quick)

    async def restart() -> None:
        redis_server.kill()
        redis_server.start()
        await _when(lambda: queue_length(redis_server, holder, "conversation-r") == 1)

    order = asyncio.run(turn_and_another_server(holder, other, "conversation-r", restart))
    assert order[:3] == ["turn in", "asking", "turn out"]
    assert sorted(order[3:]) == ["other server in", "same server in"]
    assert any("put back" in message for message in warnings_of(caplog))


def test_a_turn_begun_without_redis_joins_its_queue_when_redis_is_back(redis_server, quick):
    holder, other = AtomicRedisLockStore(**quick), AtomicRedisLockStore(**quick)
    redis_server.kill()

    async def back() -> None:
        assert holder.degraded
        redis_server.start()
        await _when(lambda: queue_length(redis_server, holder, "conversation-d") == 1)

    order = asyncio.run(turn_and_another_server(holder, other, "conversation-d", back))
    assert order[:3] == ["turn in", "asking", "turn out"]
    assert sorted(order[3:]) == ["other server in", "same server in"]
    assert not holder.degraded
