"""A Redis lock store on which two Rasa servers never handle one conversation at once, and
which keeps the bot answering while Redis is down.

Rasa wraps every turn in `async with lock_store.lock(sender_id)` (`Agent.handle_message`,
and the HTTP API's tracker routes), with the defaults: a lifetime of TICKET_LOCK_LIFETIME
seconds (60 unless set) and a look every second while waiting.

Rasa's `RedisLockStore` keeps a conversation's tickets as one JSON value and issues a ticket
by reading it, adding a ticket in Python and writing it back (RasaHQ/rasa#9213). Two servers
taking a ticket for one conversation at the same moment both read the same value, both
append the same number, the second write erases the first: both are "now serving", both run
the turn, each from a conversation without the other's message (and, depending on how the
two saves meet in the tracker store, one of the messages may be lost). Its `cleanup` has the
same gap.
And a turn longer than the lifetime lets the next one in while it still runs.

Here every step is one Lua script, which Redis runs with no other client in between:

  - a ticket number is max(last + 1, Redis's clock in microseconds): never handed out twice,
    not even after Redis restarted without its data, so releasing a late ticket can never
    release somebody else's;
  - a conversation's live tickets are a sorted set by number, their deadlines a second one;
    whoever holds the lowest live number holds the conversation;
  - a deadline is a lease its owner renews, a waiter at each look, the holder every third of
    the lifetime. The lifetime is thus how long a *dead* server blocks a conversation, not a
    limit on a turn; tickets past their deadline (by Redis's clock) are dropped by every
    script before it looks;
  - a waiter not in within the lifetime gives up with `LockError`, as with Rasa's store;
  - finishing removes exactly the caller's ticket; Redis drops a set once it is empty.

In this process, too, a conversation's turns queue on an asyncio lock (no polling of Redis
for them), so that the process never runs two turns of one conversation at once, whatever
Redis does.

Degraded mode, while Redis does not answer (any Redis error counts): a turn holds its
conversation through the asyncio lock alone, so each server still serialises a
conversation's turns, but two servers could run one conversation's turns at once (the REST
channel's message ids keep a retried message single, bot/channels/rest.py). One warning is
logged on the way in and one on the way back; `degraded` says which mode holds, for health
checks. Redis is tried again at the next turn `retry_seconds` after the last failure, and
is used again as soon as it answers. On the way back:
  - tickets this process could not release while Redis was away are released first (their
    numbers are unique), so a Redis that kept its data does not block those conversations
    until the deadlines pass;
  - a turn still running that began without Redis, or whose ticket Redis lost (restarted
    empty), puts its ticket in at its next renewal, so later turns elsewhere wait for it;
    until then (a third of the lifetime at most) another server could overlap it.

Every Redis call blocks the event loop until it answers or `socket_timeout` passes, as with
Rasa's store: keep `socket_timeout` short (about 1 s) so a hung Redis costs little.

endpoints.yml:  lock_store: {type: bot.lock_store.AtomicRedisLockStore, url: ..., port: ...,
db: ..., password: ..., key_prefix: ..., use_ssl: ..., socket_timeout: ..., retry_seconds: ...}
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import redis
from rasa.core.lock import Ticket, TicketLock
from rasa.core.lock_store import DEFAULT_SOCKET_TIMEOUT_IN_SECONDS, LOCK_LIFETIME, LockError, LockStore
from rasa.utils.endpoints import EndpointConfig

log = logging.getLogger(__name__)

DEFAULT_KEY_PREFIX = "atomic_lock:"  # apart from Rasa's "lock:": the two stores' keys have other types
DEFAULT_RETRY_SECONDS = 5.0

# shared by the scripts: Redis's own clock (servers' clocks may differ), the purge of the
# dead, and the renewal of a deadline (the keys live as long as their last deadline)
_PRELUDE = """
local queue, deadlines = KEYS[1], KEYS[2]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', deadlines, '-inf', now)) do
  redis.call('ZREM', queue, dead)
  redis.call('ZREM', deadlines, dead)
end
local function renew(ticket, lifetime)
  redis.call('ZADD', deadlines, now + tonumber(lifetime), ticket)
  local last = redis.call('ZRANGE', deadlines, -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', queue, last[2])
  redis.call('PEXPIREAT', deadlines, last[2])
end
"""

# KEYS: queue, deadlines, counter; ARGV: lifetime in ms. Returns {ticket, live tickets ahead}.
_ISSUE = (
    _PRELUDE
    + """
local micros = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local ticket = string.format('%d', math.max(tonumber(redis.call('GET', KEYS[3]) or '0') + 1, micros))
redis.call('SET', KEYS[3], ticket)
redis.call('ZADD', queue, ticket, ticket)
renew(ticket, ARGV[1])
return {ticket, redis.call('ZRANK', queue, ticket)}
"""
)

# a waiter's look. KEYS: queue, deadlines; ARGV: ticket, lifetime in ms.
# Returns the live tickets ahead, -1 if the ticket is gone.
_LOOK = (
    _PRELUDE
    + """
if not redis.call('ZSCORE', queue, ARGV[1]) then return -1 end
renew(ARGV[1], ARGV[2])
return redis.call('ZRANK', queue, ARGV[1])
"""
)

# the holder's renewal. KEYS: queue, deadlines; ARGV: ticket, lifetime in ms.
# Returns 1 if the ticket had to be put back, else 0.
_HOLD = (
    _PRELUDE
    + """
local gone = not redis.call('ZSCORE', queue, ARGV[1])
if gone then redis.call('ZADD', queue, ARGV[1], ARGV[1]) end
renew(ARGV[1], ARGV[2])
if gone then return 1 end
return 0
"""
)

# KEYS: queue, deadlines; ARGV: ticket ('' for none). Returns the live tickets left.
_FINISH = (
    _PRELUDE
    + """
if ARGV[1] ~= '' then
  redis.call('ZREM', queue, ARGV[1])
  redis.call('ZREM', deadlines, ARGV[1])
end
return redis.call('ZCARD', queue)
"""
)


@dataclass
class _Local:
    """A conversation's queue in this process."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # holding or waiting; the entry goes when nobody is


@dataclass
class _Turn:
    ticket: int | None  # in Redis; None while the turn has none there


class AtomicRedisLockStore(LockStore):
    """Rasa's ticket lock with each step one atomic Redis script and a per-process fallback;
    settings as for `RedisLockStore`, plus `retry_seconds` (how often a Redis that did not
    answer is tried again). `save_lock`, a blind overwrite of every ticket, is left out."""

    def __init__(self, endpoint_config: EndpointConfig | None = None, **settings: Any) -> None:
        """Rasa passes `endpoint_config=` alone (its url is the host); tools and tests pass the settings."""
        if endpoint_config is not None:
            settings = {"host": endpoint_config.url or "localhost", **endpoint_config.kwargs, **settings}
        self.retry_seconds = float(settings.pop("retry_seconds", DEFAULT_RETRY_SECONDS))
        self.key_prefix = _key_prefix(settings.pop("key_prefix", None))
        self.red = _redis_client(**settings)
        self._issue = self.red.register_script(_ISSUE)
        self._look = self.red.register_script(_LOOK)
        self._hold = self.red.register_script(_HOLD)
        self._finish = self.red.register_script(_FINISH)
        self._local: dict[str, _Local] = {}
        self._unreleased: set[tuple[str, int]] = set()  # tickets to release when Redis is back
        self._degraded_since: float | None = None
        self._next_try = 0.0
        super().__init__()

    @property
    def degraded(self) -> bool:
        """True while Redis does not answer: conversations are locked per process only."""
        return self._degraded_since is not None

    @asynccontextmanager
    async def lock(
        self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME, wait_time_in_seconds: float = 1
    ) -> AsyncGenerator[TicketLock, None]:
        """Hold `conversation_id` until the block ends, after every turn that asked before;
        `LockError` if that takes longer than `lock_lifetime`."""
        give_up = time.monotonic() + lock_lifetime
        async with self._in_process(conversation_id, lock_lifetime):
            turn = _Turn(await self._take_turn(conversation_id, lock_lifetime, wait_time_in_seconds, give_up))
            keeper = asyncio.ensure_future(self._keep(conversation_id, turn, lock_lifetime))
            try:
                tickets = [] if turn.ticket is None else [Ticket(turn.ticket, time.time() + lock_lifetime)]
                yield TicketLock(conversation_id, deque(tickets))
            finally:
                keeper.cancel()  # it is between Redis calls (they do not yield): none follows
                self._release(conversation_id, turn.ticket)

    @asynccontextmanager
    async def _in_process(self, conversation_id: str, timeout: float) -> AsyncIterator[None]:
        local = self._local.setdefault(conversation_id, _Local())
        local.users += 1
        try:
            try:
                await asyncio.wait_for(local.lock.acquire(), timeout)
            except asyncio.TimeoutError:
                raise LockError(f"Could not acquire lock for conversation_id '{conversation_id}'.") from None
            try:
                yield
            finally:
                local.lock.release()
        finally:
            local.users -= 1
            if not local.users:
                del self._local[conversation_id]

    async def _take_turn(self, conversation_id: str, lifetime: float, wait: float, give_up: float) -> int | None:
        """Our ticket once it is the first live one; None when Redis does not answer."""
        if not self._redis_usable():
            return None
        ticket = None
        try:
            while True:
                if ticket is not None:
                    ahead = int(self._look(keys=self._keys(conversation_id), args=[ticket, _ms(lifetime)]))
                if ticket is None or ahead < 0:  # none yet, or it lapsed (we were not seen for a lifetime)
                    ticket, ahead = self._issue_ticket(conversation_id, lifetime)
                if ahead == 0:
                    log.debug("conversation %r: ticket %d holds the lock", conversation_id, ticket)
                    return ticket
                if time.monotonic() >= give_up:
                    raise LockError(f"Could not acquire lock for conversation_id '{conversation_id}'.")
                log.debug("conversation %r: %d ticket(s) before %d", conversation_id, ahead, ticket)
                await asyncio.sleep(wait)
        except redis.RedisError as error:
            self._lost_redis(error)
            if ticket is not None:
                self._unreleased.add((conversation_id, ticket))
            return None
        except BaseException:  # gave up, or the request was cancelled: leave the queue
            self._release(conversation_id, ticket)
            raise

    async def _keep(self, conversation_id: str, turn: _Turn, lifetime: float) -> None:
        """While the turn runs: renew its ticket's lease, and put a ticket in for it when
        Redis lost it or did not answer when the turn began."""
        while True:
            await asyncio.sleep(lifetime / 3)
            if not self._redis_usable():
                continue
            try:
                if turn.ticket is None:
                    turn.ticket, _ = self._issue_ticket(conversation_id, lifetime)
                    log.info("conversation %r: the turn begun without Redis is in its queue now", conversation_id)
                elif self._hold(keys=self._keys(conversation_id), args=[turn.ticket, _ms(lifetime)]):
                    log.warning("conversation %r: Redis had lost the running turn's ticket; put back", conversation_id)
            except redis.RedisError as error:
                self._lost_redis(error)

    def _release(self, conversation_id: str, ticket: int | None) -> None:
        """Never raises: the turn is over, its answer must not become an error."""
        if ticket is None:
            return
        if not self.degraded:
            try:
                self._finish(keys=self._keys(conversation_id), args=[ticket])
                return
            except redis.RedisError as error:
                self._lost_redis(error)
        self._unreleased.add((conversation_id, ticket))

    def _redis_usable(self) -> bool:
        """Whether to use Redis now: while it answers, yes; while it does not, a try every
        `retry_seconds` (releasing what the outage left first)."""
        if self._degraded_since is None:
            return True
        if time.monotonic() < self._next_try:
            return False
        try:
            self.red.ping()
            for conversation_id, ticket in list(self._unreleased):
                self._finish(keys=self._keys(conversation_id), args=[ticket])
                self._unreleased.discard((conversation_id, ticket))
        except redis.RedisError:
            self._next_try = time.monotonic() + self.retry_seconds
            return False
        log.warning(
            "lock store: Redis is back after %.0f s: conversations are locked across servers again",
            time.time() - self._degraded_since,
        )
        self._degraded_since = None
        return True

    def _lost_redis(self, error: redis.RedisError) -> None:
        self._next_try = time.monotonic() + self.retry_seconds
        if self._degraded_since is None:
            self._degraded_since = time.time()
            log.warning(
                "lock store: Redis does not answer (%s: %s). DEGRADED MODE: each server locks its own "
                "conversations only, until Redis answers (tried every %g s)",
                type(error).__name__,
                error,
                self.retry_seconds,
            )

    def _keys(self, conversation_id: str) -> list[str]:
        return [f"{self.key_prefix}{conversation_id}:queue", f"{self.key_prefix}{conversation_id}:deadlines"]

    def _issue_ticket(self, conversation_id: str, lifetime: float) -> tuple[int, int]:
        """A new ticket after all the live ones, and how many are ahead of it."""
        keys = [*self._keys(conversation_id), f"{self.key_prefix}ticket_counter"]
        ticket, ahead = self._issue(keys=keys, args=[_ms(lifetime)])
        return int(ticket), int(ahead)

    def issue_ticket(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME) -> int:
        """A new ticket, after all the live ones, in one step (the fix of RasaHQ/rasa#9213)."""
        try:
            return self._issue_ticket(conversation_id, lock_lifetime)[0]
        except redis.RedisError as error:  # Rasa's contract: any failure to take a ticket is a LockError
            raise LockError(f"Error while acquiring lock. Error:\n{error}") from error

    def get_lock(self, conversation_id: str) -> TicketLock | None:
        """A snapshot of the live tickets."""
        queue, deadlines = self._keys(conversation_id)
        with self.red.pipeline(transaction=True) as pipe:
            numbers, expiries = pipe.zrange(queue, 0, -1).zrange(deadlines, 0, -1, withscores=True).execute()
        expires = {int(number): score / 1000 for number, score in expiries}
        tickets = [Ticket(int(n), expires[int(n)]) for n in numbers if int(n) in expires]
        return TicketLock(conversation_id, deque(tickets)) if tickets else None

    def delete_lock(self, conversation_id: str) -> None:
        """Drop every ticket of `conversation_id`."""
        self._log_deletion(conversation_id, bool(self.red.delete(*self._keys(conversation_id))))

    def is_someone_waiting(self, conversation_id: str) -> bool:
        """Whether any live ticket remains."""
        return int(self._finish(keys=self._keys(conversation_id), args=[""])) > 0

    def finish_serving(self, conversation_id: str, ticket_number: int) -> None:
        """Remove exactly this ticket; the next one's holder may go."""
        self._finish(keys=self._keys(conversation_id), args=[ticket_number])

    def cleanup(self, conversation_id: str, ticket_number: int) -> None:
        """Like `finish_serving`: Redis drops the emptied sets, so there is no check-then-delete."""
        self.finish_serving(conversation_id, ticket_number)


def _redis_client(
    host: str = "localhost",
    port: int = 6379,
    db: int = 1,
    username: str | None = None,
    password: str | None = None,
    use_ssl: bool = False,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    ssl_ca_certs: str | None = None,
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT_IN_SECONDS,
) -> redis.StrictRedis:
    """A client with `RedisLockStore`'s settings and defaults (an unknown setting is a
    TypeError); connecting is bounded by `socket_timeout` too."""
    return redis.StrictRedis(
        host=host,
        port=int(port),
        db=int(db),
        username=username,
        password=password,
        ssl=use_ssl,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        ssl_ca_certs=ssl_ca_certs,
        socket_timeout=float(socket_timeout),
        socket_connect_timeout=float(socket_timeout),
    )


def _key_prefix(key_prefix: str | None) -> str:
    """As `RedisLockStore`: an alphanumeric prefix goes before the default one, anything else is ignored."""
    if not key_prefix:
        return DEFAULT_KEY_PREFIX
    if isinstance(key_prefix, str) and key_prefix.isalnum():
        return f"{key_prefix}:{DEFAULT_KEY_PREFIX}"
    log.warning("lock store key prefix %r is not alphanumeric; using %r", key_prefix, DEFAULT_KEY_PREFIX)
    return DEFAULT_KEY_PREFIX


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
