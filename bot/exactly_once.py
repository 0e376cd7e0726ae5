"""A message that reaches the bot more than once (the customer's client sending it again
after a timeout, nginx passing it to the other Rasa server after one died mid-turn) is
processed once, and every delivery gets the same replies. The client names each message
with an id unique for its sender (`message_id` in the REST body, bot/channels/rest.py);
Rasa keeps that id on the customer's event in the tracker (`UserUttered.message_id`).

Why once, in two steps:

1. The claim (bot/dedup.py, shared by the servers). Of the deliveries of one (sender, id),
   one claims it; the others wait for the claimant's replies (at most `wait_seconds`, then
   they are told it is still being worked on) or, once it has answered, get the kept
   replies without any work. The claimant renews its claim every third of
   `claim_seconds`, so the claim lapses only when its server died (or stalled that long);
   then the next delivery claims it again. `claim_seconds` must stay below the time within
   which the client retries, or the last retry finds the dead claim still alive.
2. The turn runs under the conversation's lock (the lock store: one server at a time),
   and the tracker is read first, under the same hold: if a customer event carries the
   id, that turn was saved before (its server died before answering, or the claim was lost
   with Redis), and its replies are read back from the tracker (the bot's messages after
   that event, up to the bot's next listen) instead of running it again. Rasa saves a
   turn's events in one go at its end, so the id is in the tracker once at most, whatever
   the claim store knows. The claim makes retries cheap, quick and bounded; the lock and
   the tracker make them safe.

Limits: the lock is a lease (bot/lock_store.py): a server stalled longer than the lock's
lifetime, or the lock store's degraded mode (Redis down) together with a lost claim, can
let two turns miss each other. A turn cut off by a dead server is run again from the
start: whatever its actions did before (a ticket filed) is done again unless the action
itself is keyed on the message id (`tracker.latest_message["message_id"]`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from rasa.core.agent import Agent
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.dedup import ANSWERED, PROCESSING, DedupStore, DedupUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

STILL_WORKING = "您的消息正在处理，请稍候，稍后为您送上答复。"
POLL_SECONDS = 0.1  # how often a waiting delivery looks for the claimant's replies


@dataclass(frozen=True)
class Answer:
    replies: list[dict[str, Any]]  # as Rasa's REST channel gives them
    done: bool  # False: another delivery of the message is still being worked on


class ExactlyOnce:
    def __init__(self, store: DedupStore, claim_seconds: int, wait_seconds: float, keep_seconds: int) -> None:
        """`store`'s entries must live `claim_seconds` when claimed; answers are kept `keep_seconds`."""
        self._store = store
        self._claim_seconds = claim_seconds
        self._wait_seconds = wait_seconds
        self._keep_seconds = keep_seconds
        self._io = ThreadPoolExecutor(max_workers=8, thread_name_prefix="message-claims")
        self._turns: set[asyncio.Future] = set()  # running turns, kept from the garbage collector

    async def answer(self, agent: Agent, message: UserMessage) -> Answer:
        """The replies to `message` (its `message_id` set by the client), processing it only
        if no delivery of it has been; raises if the turn failed (the claim is released)."""
        key = message_key(message.sender_id, message.message_id)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._wait_seconds
        while True:
            try:
                if await self._off_loop(self._store.claim, key):
                    return Answer(await self._run_once(agent, message, key), done=True)
                entry = await self._off_loop(self._store.get, key)
            except DedupUnavailable as error:
                log.error("message store unavailable (%s): %s relies on the lock and the tracker", error, key)
                return Answer(await self._run_once(agent, message, None), done=True)
            if entry is not None and entry.state == ANSWERED:
                log.info("message %s delivered again: the kept replies", key)
                return Answer(list(entry.replies), done=True)
            if loop.time() >= give_up:
                log.info("message %s delivered again while still being worked on", key)
                return Answer([{"recipient_id": message.sender_id, "text": STILL_WORKING}], done=False)
            if entry is not None:  # still processing; None: the claim lapsed, claim it again at once
                await asyncio.sleep(POLL_SECONDS)

    async def _run_once(self, agent: Agent, message: UserMessage, key: str | None) -> list[dict[str, Any]]:
        turn = asyncio.ensure_future(self._turn(agent, message, key))
        self._turns.add(turn)
        turn.add_done_callback(self._turns.discard)
        return await asyncio.shield(turn)  # a client hanging up does not cut the turn: its retry gets the replies

    async def _turn(self, agent: Agent, message: UserMessage, key: str | None) -> list[dict[str, Any]]:
        renewal = asyncio.ensure_future(self._renew(key)) if key else None
        try:
            replies = await replies_once(agent, message)
        except BaseException:
            if key:
                await self._quietly(self._store.release, key)
            raise
        finally:
            if renewal:
                renewal.cancel()
        if key:
            await self._quietly(self._store.move, key, PROCESSING, ANSWERED, replies, self._keep_seconds)
        return replies

    async def _renew(self, key: str) -> None:
        while True:
            await asyncio.sleep(self._claim_seconds / 3)
            await self._quietly(self._store.move, key, PROCESSING, PROCESSING, None, self._claim_seconds)

    async def _quietly(self, function: Callable[..., Any], *args: Any) -> None:
        """A store call whose failure changes nothing for this delivery (retries fall back on the tracker)."""
        try:
            await self._off_loop(function, *args)
        except DedupUnavailable as error:
            log.warning("message store unavailable (%s) for %s", error, args[0])

    async def _off_loop(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._io, function, *args)


def message_key(sender_id: str, message_id: str) -> str:
    """The store's key of a message: any sender id and message id, in bounded length."""
    return hashlib.sha256(f"{sender_id}\0{message_id}".encode()).hexdigest()


async def replies_once(agent: Agent, message: UserMessage) -> list[dict[str, Any]]:
    """`Agent.handle_message` with the tracker read first under the same hold of the lock:
    a turn saved before for this message id is answered from the tracker, not run again."""
    async with agent.lock_store.lock(message.sender_id):
        tracker = await agent.tracker_store.retrieve(message.sender_id)
        said = saved_replies(tracker, message.message_id) if tracker else None
        if said is not None:
            log.info(
                "message %s of %s was processed before: its replies from the tracker",
                message.message_id,
                message.sender_id,
            )
            collector = CollectingOutputChannel()
            for event in said:  # as Rasa's processor sends them
                await collector.send_response(message.sender_id, event.message())
            return collector.messages
        await agent.processor.handle_message(message)
    return message.output_channel.messages


def saved_replies(tracker: DialogueStateTracker, message_id: str) -> list[BotUttered] | None:
    """What the bot said in the saved turn of `message_id` (None: no such turn): its
    messages after the customer's, up to the bot's next listen or the next customer message."""
    events = list(tracker.events)
    start = next(
        (
            i
            for i in range(len(events) - 1, -1, -1)
            if isinstance(events[i], UserUttered) and events[i].message_id == message_id
        ),
        None,
    )
    if start is None:
        return None
    said = []
    for event in events[start + 1 :]:
        if isinstance(event, UserUttered) or (
            isinstance(event, ActionExecuted) and event.action_name == ACTION_LISTEN_NAME
        ):
            break
        if isinstance(event, BotUttered):
            said.append(event)
    return said
