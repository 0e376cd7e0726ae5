"""The record of messages already taken from WeChat, so that its retries (the same MsgId,
up to three times, 5 s apart) reach the bot once. Each message has a state:

  processing  taken; the bot is working on it
  answered    the answer is the passive reply (kept, so a retry gets the same reply)
  push        the request that waited gave up (or WeChat retried): push the answer when ready
  pushed      the answer went out through the customer-service API

A move from one state to another is a compare-and-set, so of the request waiting for the
answer and the task finishing it exactly one decides how the answer goes out, also across
servers. Entries expire; an expired one counts as absent. Redis (SET NX with expiry) when
REDIS_URL is set, the database otherwise, memory when neither answers.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from bot import clock
from bot.wechat.models import WeChatMessageRow

log = logging.getLogger(__name__)

PROCESSING, ANSWERED, PUSH, PUSHED = "processing", "answered", "push", "pushed"


class DedupUnavailable(Exception):
    """The store did not answer."""


@dataclass(frozen=True)
class Entry:
    state: str
    replies: tuple[str, ...] = ()


class DedupStore(Protocol):
    def claim(self, key: str) -> bool:
        """True for the first delivery of `key` (now `processing`), False for a retry."""

    def get(self, key: str) -> Entry | None:
        """The entry, None when absent or expired."""

    def move(self, key: str, from_state: str, to_state: str, replies: list[str] | None = None) -> bool:
        """Set the state (and the replies) only if the entry is in `from_state`."""


class DatabaseDedup:
    """The `wechat_messages` table: an insert claims (the primary key refuses a second)."""

    PURGE_EVERY_SECONDS = 60

    def __init__(self, sessions: sessionmaker, ttl_seconds: int) -> None:
        self._sessions = sessions
        self._ttl = timedelta(seconds=ttl_seconds)
        self._purged_at = 0.0

    def claim(self, key: str) -> bool:
        now = clock.now()
        try:
            self._purge(now)
            with self._sessions.begin() as session:
                # an expired entry of the same key is a new message (WeChat reuses nothing
                # within days, but a stale row must not swallow it)
                session.execute(
                    delete(WeChatMessageRow).where(
                        WeChatMessageRow.message_key == key, WeChatMessageRow.expires_at <= now
                    )
                )
                session.add(
                    WeChatMessageRow(message_key=key, state=PROCESSING, received_at=now, expires_at=now + self._ttl)
                )
            return True
        except IntegrityError:
            return False
        except SQLAlchemyError as error:
            raise DedupUnavailable(type(error).__name__) from error

    def get(self, key: str) -> Entry | None:
        try:
            with self._sessions() as session:
                row = session.scalars(
                    select(WeChatMessageRow).where(
                        WeChatMessageRow.message_key == key, WeChatMessageRow.expires_at > clock.now()
                    )
                ).first()
                return None if row is None else Entry(row.state, tuple(json.loads(row.replies or "[]")))
        except SQLAlchemyError as error:
            raise DedupUnavailable(type(error).__name__) from error

    def move(self, key: str, from_state: str, to_state: str, replies: list[str] | None = None) -> bool:
        values: dict = {"state": to_state}
        if replies is not None:
            values["replies"] = json.dumps(replies, ensure_ascii=False)
        try:
            with self._sessions.begin() as session:
                result = session.execute(
                    update(WeChatMessageRow)
                    .where(WeChatMessageRow.message_key == key, WeChatMessageRow.state == from_state)
                    .values(**values)
                )
                return result.rowcount == 1
        except SQLAlchemyError as error:
            raise DedupUnavailable(type(error).__name__) from error

    def _purge(self, now: datetime) -> None:
        """Expired entries are deleted now and then, not on every message."""
        if time.monotonic() - self._purged_at < self.PURGE_EVERY_SECONDS:
            return
        self._purged_at = time.monotonic()
        with self._sessions.begin() as session:
            gone = session.execute(delete(WeChatMessageRow).where(WeChatMessageRow.expires_at <= now)).rowcount
        if gone:
            log.info("purged %d expired WeChat message entries", gone)


# the compare-and-set on Redis: one script, so no other client can act in between
_MOVE = """
local value = redis.call('GET', KEYS[1])
if not value then return 0 end
local entry = cjson.decode(value)
if entry['state'] ~= ARGV[1] then return 0 end
entry['state'] = ARGV[2]
if ARGV[3] ~= '' then entry['replies'] = cjson.decode(ARGV[3]) end
redis.call('SET', KEYS[1], cjson.encode(entry), 'KEEPTTL')
return 1
"""


class RedisDedup:
    """One Redis key a message, claimed with SET NX EX; the value is the state and replies as JSON."""

    def __init__(self, client, ttl_seconds: int, prefix: str = "wechat:message:") -> None:
        import redis

        self._client = client
        self._ttl = ttl_seconds
        self._prefix = prefix
        self._errors = (redis.RedisError,)
        self._move = client.register_script(_MOVE)

    @classmethod
    def from_url(cls, url: str, ttl_seconds: int) -> RedisDedup:
        import redis

        return cls(redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2), ttl_seconds)

    def claim(self, key: str) -> bool:
        try:
            return bool(self._client.set(self._prefix + key, _encode(PROCESSING, []), nx=True, ex=self._ttl))
        except self._errors as error:
            raise DedupUnavailable(type(error).__name__) from error

    def get(self, key: str) -> Entry | None:
        try:
            value = self._client.get(self._prefix + key)
        except self._errors as error:
            raise DedupUnavailable(type(error).__name__) from error
        if value is None:
            return None
        data = json.loads(value)
        return Entry(data["state"], tuple(data.get("replies") or ()))  # Lua's cjson writes [] as {}

    def move(self, key: str, from_state: str, to_state: str, replies: list[str] | None = None) -> bool:
        kept = "" if replies is None else json.dumps(replies, ensure_ascii=False)
        try:
            return bool(self._move(keys=[self._prefix + key], args=[from_state, to_state, kept]))
        except self._errors as error:
            raise DedupUnavailable(type(error).__name__) from error


def _encode(state: str, replies: list[str]) -> str:
    return json.dumps({"state": state, "replies": replies}, ensure_ascii=False)


class MemoryDedup:
    """This process only: the fallback while the configured store does not answer, and tests."""

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
            found = self._entries.get(key)
            return found[1] if found and found[0] > time.monotonic() else None

    def move(self, key: str, from_state: str, to_state: str, replies: list[str] | None = None) -> bool:
        with self._lock:
            found = self._entries.get(key)
            if not found or found[1].state != from_state:
                return False
            kept = found[1].replies if replies is None else tuple(replies)
            self._entries[key] = (found[0], Entry(to_state, kept))
            return True


def store_for(redis_url: str, ttl_seconds: int) -> DedupStore:
    """Redis when REDIS_URL is set (several Rasa servers share it), else the database."""
    if redis_url:
        return RedisDedup.from_url(redis_url, ttl_seconds)
    from bot.db import session_factory

    return DatabaseDedup(session_factory(), ttl_seconds)
