"""The record of messages already taken from a channel, so that the channel's retries of one
message reach the bot once (WeChat: bot/wechat/inbox.py; REST: bot/exactly_once.py).

A message's entry has a state and the replies kept for a retry. Claiming creates it in
`processing`; every later change is a compare-and-set (from the state expected, or not at
all), so of two servers or two requests exactly one decides. A channel may add states of
its own (WeChat's push and pushed). Entries expire; an expired one counts as absent, and the
message may be claimed again (a claim whose server died lapses that way).

Redis (one hash a message, expiring) when REDIS_URL is set, the database while Redis does
not answer; the database (table `inbound_messages`) when REDIS_URL is not set. A channel's
keys live under its own namespace in either store.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import redis
from sqlalchemy import Column, DateTime, String, Text, delete, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from bot import clock
from bot.db import Base, session_factory

log = logging.getLogger(__name__)

PROCESSING, ANSWERED = "processing", "answered"


class DedupUnavailable(Exception):
    """The store did not answer."""


@dataclass(frozen=True)
class Entry:
    state: str
    replies: tuple[Any, ...] = ()  # as the channel gave them (JSON values)


class DedupStore(Protocol):
    def claim(self, key: str) -> bool:
        """True for the first delivery of `key` (now `processing`), False while an entry lives."""

    def get(self, key: str) -> Entry | None:
        """The entry, None when absent or expired."""

    def move(
        self,
        key: str,
        from_state: str,
        to_state: str,
        replies: list[Any] | None = None,
        keep_seconds: int | None = None,
    ) -> bool:
        """Set the state (and the replies, and a new expiry `keep_seconds` from now) only if
        the entry lives and is in `from_state`."""

    def release(self, key: str) -> None:
        """Forget `key` if it is still `processing` (its processing failed: a retry claims it)."""


class InboundMessageRow(Base):
    """A message a channel took (key: namespace and the channel's message id), remembered
    until it expires so that the channel's retries are not processed again."""

    __tablename__ = "inbound_messages"

    message_key = Column(String(160), primary_key=True)
    state = Column(String(16), nullable=False)
    replies = Column(Text)  # JSON list, given again to a retry
    received_at = Column(DateTime, nullable=False)
    expires_at = Column(DateTime, nullable=False, index=True)


class DatabaseDedup:
    """The `inbound_messages` table: an insert claims (the primary key refuses a second)."""

    PURGE_EVERY_SECONDS = 60

    def __init__(self, sessions: sessionmaker, ttl_seconds: int, namespace: str) -> None:
        self._sessions = sessions
        self._ttl = timedelta(seconds=ttl_seconds)
        self._namespace = namespace
        self._purged_at = 0.0

    def claim(self, key: str) -> bool:
        now, key = clock.now(), self._key(key)
        try:
            self._purge(now)
            with self._sessions.begin() as session:
                # an expired entry of the same key is a new delivery: it must not swallow it
                session.execute(
                    delete(InboundMessageRow).where(
                        InboundMessageRow.message_key == key, InboundMessageRow.expires_at <= now
                    )
                )
                session.add(
                    InboundMessageRow(message_key=key, state=PROCESSING, received_at=now, expires_at=now + self._ttl)
                )
            return True
        except IntegrityError:
            return False
        except SQLAlchemyError as error:
            raise DedupUnavailable(type(error).__name__) from error

    def get(self, key: str) -> Entry | None:
        try:
            with self._sessions() as session:
                row = session.scalars(select(InboundMessageRow).where(*self._live(key))).first()
                return None if row is None else Entry(row.state, tuple(json.loads(row.replies or "[]")))
        except SQLAlchemyError as error:
            raise DedupUnavailable(type(error).__name__) from error

    def move(
        self,
        key: str,
        from_state: str,
        to_state: str,
        replies: list[Any] | None = None,
        keep_seconds: int | None = None,
    ) -> bool:
        values: dict[str, Any] = {"state": to_state}
        if replies is not None:
            values["replies"] = json.dumps(replies, ensure_ascii=False)
        if keep_seconds is not None:
            values["expires_at"] = clock.now() + timedelta(seconds=keep_seconds)
        try:
            with self._sessions.begin() as session:
                result = session.execute(
                    update(InboundMessageRow)
                    .where(*self._live(key), InboundMessageRow.state == from_state)
                    .values(**values)
                )
                return result.rowcount == 1
        except SQLAlchemyError as error:
            raise DedupUnavailable(type(error).__name__) from error

    def release(self, key: str) -> None:
        try:
            with self._sessions.begin() as session:
                session.execute(
                    delete(InboundMessageRow).where(*self._live(key), InboundMessageRow.state == PROCESSING)
                )
        except SQLAlchemyError as error:
            raise DedupUnavailable(type(error).__name__) from error

    def _key(self, key: str) -> str:
        return f"{self._namespace}:{key}"

    def _live(self, key: str) -> tuple:
        return InboundMessageRow.message_key == self._key(key), InboundMessageRow.expires_at > clock.now()

    def _purge(self, now: datetime) -> None:
        """Expired entries are deleted now and then, not on every message."""
        if time.monotonic() - self._purged_at < self.PURGE_EVERY_SECONDS:
            return
        self._purged_at = time.monotonic()
        with self._sessions.begin() as session:
            gone = session.execute(delete(InboundMessageRow).where(InboundMessageRow.expires_at <= now)).rowcount
        if gone:
            log.info("purged %d expired inbound message entries", gone)


# the claim and the compare-and-sets on Redis: each one script, so no other client acts in between
_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""
_MOVE = """
if redis.call('HGET', KEYS[1], 'state') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'replies', ARGV[3]) end
if ARGV[4] ~= '' then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
return 1
"""
_RELEASE = """
if redis.call('HGET', KEYS[1], 'state') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisDedup:
    """One Redis hash a message (state, replies as JSON) under `inbound:<namespace>:`,
    expiring by Redis's clock."""

    PREFIX = "inbound:"

    def __init__(self, client: redis.Redis, ttl_seconds: int, namespace: str) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self.prefix = f"{self.PREFIX}{namespace}:"
        self._claim = client.register_script(_CLAIM)
        self._move = client.register_script(_MOVE)
        self._release = client.register_script(_RELEASE)

    @classmethod
    def from_url(cls, url: str, ttl_seconds: int, namespace: str) -> RedisDedup:
        return cls(redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2), ttl_seconds, namespace)

    def claim(self, key: str) -> bool:
        try:
            return bool(self._claim(keys=[self.prefix + key], args=[PROCESSING, self._ttl]))
        except redis.RedisError as error:
            raise DedupUnavailable(type(error).__name__) from error

    def get(self, key: str) -> Entry | None:
        try:
            state, replies = self._client.hmget(self.prefix + key, "state", "replies")
        except redis.RedisError as error:
            raise DedupUnavailable(type(error).__name__) from error
        if state is None:
            return None
        return Entry(state.decode(), tuple(json.loads(replies or "[]")))

    def move(
        self,
        key: str,
        from_state: str,
        to_state: str,
        replies: list[Any] | None = None,
        keep_seconds: int | None = None,
    ) -> bool:
        kept = "" if replies is None else json.dumps(replies, ensure_ascii=False)
        expiry = "" if keep_seconds is None else keep_seconds
        try:
            return bool(self._move(keys=[self.prefix + key], args=[from_state, to_state, kept, expiry]))
        except redis.RedisError as error:
            raise DedupUnavailable(type(error).__name__) from error

    def release(self, key: str) -> None:
        try:
            self._release(keys=[self.prefix + key], args=[PROCESSING])
        except redis.RedisError as error:
            raise DedupUnavailable(type(error).__name__) from error


class MemoryDedup:
    """This process only: the last resort while no shared store answers, and tests."""

    def __init__(self, ttl_seconds: int) -> None:
        self._ttl = ttl_seconds
        self._entries: dict[str, tuple[float, Entry]] = {}
        self._lock = threading.Lock()

    def claim(self, key: str) -> bool:
        with self._lock:
            now = time.monotonic()
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            if key in self._entries:
                return False
            self._entries[key] = (now + self._ttl, Entry(PROCESSING))
            return True

    def get(self, key: str) -> Entry | None:
        with self._lock:
            return self._live(key)

    def move(
        self,
        key: str,
        from_state: str,
        to_state: str,
        replies: list[Any] | None = None,
        keep_seconds: int | None = None,
    ) -> bool:
        with self._lock:
            found = self._live(key)
            if found is None or found.state != from_state:
                return False
            expires = self._entries[key][0] if keep_seconds is None else time.monotonic() + keep_seconds
            self._entries[key] = (expires, Entry(to_state, found.replies if replies is None else tuple(replies)))
            return True

    def release(self, key: str) -> None:
        with self._lock:
            found = self._live(key)
            if found is not None and found.state == PROCESSING:
                del self._entries[key]

    def _live(self, key: str) -> Entry | None:
        found = self._entries.get(key)
        return found[1] if found and found[0] > time.monotonic() else None


class FallbackDedup:
    """`primary` (Redis) while it answers, `fallback` (the database) while it does not; the
    primary is tried again every `retry_seconds`. An entry made in one store is unknown to
    the other: a message claimed just before the switch may be claimed again after it (the
    REST channel then finds the turn in the tracker; WeChat may answer twice)."""

    def __init__(self, primary: DedupStore, fallback: DedupStore, retry_seconds: float = 5.0) -> None:
        self._primary = primary
        self._fallback = fallback
        self._retry_seconds = retry_seconds
        self._down_since: float | None = None
        self._next_try = 0.0
        self._state = threading.Lock()  # several threads call: one warning a switch

    @property
    def degraded(self) -> bool:
        """True while the primary store does not answer."""
        return self._down_since is not None

    def claim(self, key: str) -> bool:
        return self._call("claim", key)

    def get(self, key: str) -> Entry | None:
        return self._call("get", key)

    def move(
        self,
        key: str,
        from_state: str,
        to_state: str,
        replies: list[Any] | None = None,
        keep_seconds: int | None = None,
    ) -> bool:
        return self._call("move", key, from_state, to_state, replies, keep_seconds)

    def release(self, key: str) -> None:
        self._call("release", key)

    def _call(self, method: str, *args: Any) -> Any:
        if not self.degraded or time.monotonic() >= self._next_try:
            try:
                result = getattr(self._primary, method)(*args)
            except DedupUnavailable as error:
                self._went_down(error)
            else:
                self._came_back()
                return result
        return getattr(self._fallback, method)(*args)

    def _went_down(self, error: DedupUnavailable) -> None:
        with self._state:
            self._next_try = time.monotonic() + self._retry_seconds
            if self._down_since is None:
                self._down_since = time.monotonic()
                log.warning("message store: Redis does not answer (%s); using the database until it does", error)

    def _came_back(self) -> None:
        if self._down_since is None:
            return
        with self._state:
            if self._down_since is not None:
                log.warning("message store: Redis is back after %.0f s", time.monotonic() - self._down_since)
                self._down_since = None


def store_for(redis_url: str, ttl_seconds: int, namespace: str) -> DedupStore:
    """Redis when REDIS_URL is set (several Rasa servers share it), falling back to the
    database; else the database."""
    database = DatabaseDedup(session_factory(), ttl_seconds, namespace)
    if redis_url:
        return FallbackDedup(RedisDedup.from_url(redis_url, ttl_seconds, namespace), database)
    return database
