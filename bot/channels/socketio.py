"""The website widget's socket.io channel, for one Rasa server or several behind a load balancer.

Rasa's socket.io channel keeps its clients in the memory of the server they connected to:
a bot message said on another server (an agent's reply through the HTTP API, which nginx
may send to either server; a reminder set there) reaches nobody. With `redis_url` set, the
channel's socket.io server gets python-socketio's Redis manager: every emit is also
published on a Redis channel, and each server delivers what it hears there to its own
clients. The conversation's room is what travels: with `session_persistence` Rasa puts the
socket in a room named by the widget's session id, the conversation id, and otherwise the
conversation id is the socket's id, which is a room of its own.

Without `redis_url` the channel is Rasa's `socketio` channel, unchanged. Its name stays
`socketio` either way (the webhook path, `output_channel=latest`, `channel: socketio`
responses). Redis down: docs/website.md, "Several Rasa servers".
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

from rasa.core.channels.channel import InputChannel, UserMessage
from rasa.core.channels.socketio import SocketIOInput as RasaSocketIOInput
from redis import asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from sanic import Blueprint
from socketio import AsyncRedisManager

log = logging.getLogger(__name__)

DEFAULT_REDIS_CHANNEL = "95598-socketio"
# a Redis that hangs must not hold a customer's turn for long: the emit waits at most this
REDIS_TIMEOUT_SECONDS = 1.0
# how soon a server hears the others again after Redis came back
MAX_RETRY_SECONDS = 5.0
_VARIABLE = re.compile(r"^\$\{(\w+)\}$")


class SocketIOInput(RasaSocketIOInput):
    """Rasa's socket.io channel; with `redis_url`, fanned out across servers through Redis."""

    redis_url = ""  # empty: this server's clients only, as Rasa's channel
    redis_channel = DEFAULT_REDIS_CHANNEL  # the same on every server of one cluster

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        credentials = credentials or {}
        channel = cast(SocketIOInput, super().from_credentials(credentials))
        channel.redis_url = _setting(credentials.get("redis_url"))
        channel.redis_channel = _setting(credentials.get("redis_channel")) or DEFAULT_REDIS_CHANNEL
        return channel

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = super().blueprint(on_new_message)
        if self.redis_url and self.sio is not None:
            # Rasa builds its AsyncServer inside blueprint() with the default manager; no
            # client can have connected yet, so the manager is swapped before any state exists
            manager = RedisFanOut(self.redis_url, self.redis_channel)
            manager.set_server(self.sio)
            self.sio.manager = manager
            log.info("socket.io fanned out through Redis on channel %r", self.redis_channel)
        else:
            log.info("socket.io on this server only (no redis_url): run one Rasa server, or set REDIS_URL")
        return webhook


class RedisFanOut(AsyncRedisManager):
    """python-socketio's Redis manager, changed where Redis being down would hurt customers.

    Upstream publishes every emit, this server's included, and delivers only what comes back
    from Redis: with Redis down no customer anywhere gets a word, and a server's first
    customer loses its session_confirm, published before the listener (started by that
    connection) has subscribed. Its listener, when Redis is down as it starts, retries in a
    tight loop printing thousands of tracebacks a second. Here this server's clients are
    served directly and Redis carries only what the other servers need; the listener
    retries with a pause and logs the outage once.
    Messages are JSON, not pickle: whoever can publish on Redis cannot run code here.
    """

    def __init__(self, url: str, channel: str) -> None:
        super().__init__(
            url,
            channel=channel,
            redis_options={
                "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
                "socket_timeout": REDIS_TIMEOUT_SECONDS,
                # once more on a new connection: the pooled one is dead after a Redis restart
                "retry_on_error": [RedisConnectionError],
            },
        )
        # its own client: a read timeout would end a subscription that is merely quiet
        self._subscriber = aioredis.Redis.from_url(url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS)

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str | None = None,
        room: str | None = None,
        skip_sid: Any = None,
        callback: Any = None,
        **kwargs: Any,
    ) -> None:
        namespace = namespace or "/"
        await super().emit(event, data, namespace, room, skip_sid, callback, ignore_queue=True)
        if not kwargs.get("ignore_queue"):
            await super().emit(event, data, namespace, room, skip_sid, callback)

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        if message.get("host_id") != self.host_id:  # this server's clients had it already
            await super()._handle_emit(message)

    async def _publish(self, data: dict[str, Any]) -> None:
        try:
            await self.redis.publish(self.channel, json.dumps(data))
        except RedisError as error:
            log.error(
                "socket.io: Redis unreachable (%s): %s %r for room %s reached this server's customers only",
                type(error).__name__,
                data.get("method"),
                data.get("event"),
                data.get("room"),
            )

    async def _listen(self) -> AsyncIterator[dict[str, Any]]:
        retry_seconds = 1.0
        lost = False
        while True:
            pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                if lost:
                    log.warning("socket.io: Redis is back, messages from the other servers arrive again")
                    lost, retry_seconds = False, 1.0
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        yield _decoded(message["data"])
            except RedisError as error:
                if not lost:
                    log.error(
                        "socket.io: Redis unreachable (%s): messages said on the other servers do not reach "
                        "this server's customers until it is back (retrying)",
                        type(error).__name__,
                    )
                    lost = True
                await asyncio.sleep(retry_seconds)
                retry_seconds = min(retry_seconds * 2, MAX_RETRY_SECONDS)
            finally:
                await pubsub.reset()


def _decoded(data: bytes) -> dict[str, Any]:
    """A message for the manager; one that is not this class's JSON comes out without a
    `method`, which the manager ignores."""
    try:
        message = json.loads(data)
    except ValueError:
        log.warning("socket.io: a message on the Redis channel that is not JSON was ignored")
        return {}
    return message if isinstance(message, dict) else {}


def _setting(value: Any) -> str:
    """A credentials.yml value; `"${NAME}"` is read from the environment, unset is empty
    (Rasa substitutes only unquoted values and refuses to start on an unset one)."""
    text = str(value or "").strip()
    variable = _VARIABLE.match(text)
    return os.environ.get(variable[1], "").strip() if variable else text
