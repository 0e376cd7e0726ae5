"""Each message WeChat delivers, processed once and answered once.

WeChat waits 5 s for the HTTP answer, then sends the same message again, three times at
most. So: the first delivery of a message is claimed in the dedup store and handed to the
bot in a task; if the bot's answer is ready within `reply_seconds` (3.5 s) it is the passive
reply (被动回复) in the HTTP answer. Otherwise the request answers "success" (nothing) at once
and the task pushes the answer through the customer-service API when it is ready. A retry
never reaches the bot: it gets the same passive reply if there was one, else "success" and
the answer is pushed (WeChat has stopped listening to the earlier request, so a passive reply
there would be lost). The dedup store's compare-and-set decides between passive and push.

A message's states in the dedup store (bot/dedup.py; the last two are WeChat's own):

  processing  taken; the bot is working on it
  answered    the answer is the passive reply (kept, so a retry gets the same reply)
  push        the request that waited gave up (or WeChat retried): push the answer when ready
  pushed      the answer went out through the customer-service API

Under load (bench/RESULTS.md): a follower's messages go to the bot one at a time, in the
order WeChat delivered them, and at most `bot_concurrency` turns run at once. Rasa runs the
NLU on the event loop, so with every message of a burst in the bot at once the loop is busy
for seconds and no deadline fires in time; waiting messages answer "success" at their
deadline and are pushed when their turn is done. WeChat hanging up (Sanic then cancels the
request) must not lose a message already claimed: the work runs shielded from the request,
and a hang-up counts as the deadline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker
from wechatpy.messages import BaseMessage

from bot.dedup import ANSWERED, PROCESSING, DedupStore, DedupUnavailable, Entry, MemoryDedup
from bot.known_customer import vouch
from bot.masking import mask_account, mask_openid
from bot.outages import known_area_in
from bot.utility import UtilityData
from bot.wechat import bindings, messages
from bot.wechat.config import WeChatConfig
from bot.wechat.delivery import Delivery

log = logging.getLogger(__name__)
T = TypeVar("T")

PUSH, PUSHED = "push", "pushed"

# the bot's turn: (text, sender id, metadata) -> the messages it said (Rasa's dicts)
AskBot = Callable[[str, str, dict[str, Any]], Awaitable[list[dict[str, Any]]]]


class Inbox:
    def __init__(
        self,
        config: WeChatConfig,
        store: DedupStore,
        delivery: Delivery,
        ask_bot: AskBot,
        executor: Executor,
        sessions: Callable[[], sessionmaker],
        utility: Callable[[], UtilityData],
    ) -> None:
        self._config = config
        self._store = store
        self._fallback = MemoryDedup(config.dedup_seconds)
        self._delivery = delivery
        self._ask_bot = ask_bot
        self._executor = executor
        self._sessions = sessions
        self._utility = utility
        self._tasks: set[asyncio.Future] = set()  # answers still being worked out
        # the dedup store and the bindings: quick calls, never queued behind a slow push
        self._io = ThreadPoolExecutor(max_workers=8, thread_name_prefix="wechat-store")
        self._last: dict[str, asyncio.Future] = {}  # each follower's latest message: done when answered
        self._turns: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    async def receive(self, message: BaseMessage) -> list[str]:
        """The texts of the passive reply; empty: answer "success" (nothing now)."""
        hung_up = asyncio.get_running_loop().create_future()
        work = self._keep(asyncio.ensure_future(self._receive(message, hung_up)))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            # WeChat hung up (Sanic cancels the request): what it would have said is pushed
            if not hung_up.done():
                hung_up.set_result(None)
            raise

    async def _receive(self, message: BaseMessage, hung_up: asyncio.Future) -> list[str]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._config.reply_seconds
        key = messages.dedup_key(message)
        store: DedupStore = self._store
        turn = self._queue(message.source)  # before any await: in the order WeChat delivered them
        try:
            first = await self._off_loop(store.claim, key)
        except DedupUnavailable as error:
            # rather answered twice than not at all: this process remembers it meanwhile
            log.error("WeChat dedup store unavailable (%s): using this process's memory", error)
            store = self._fallback
            first = store.claim(key)
        except BaseException:
            self._pass_on(*turn)  # the follower's next message must not wait for this one
            raise
        if not first:
            self._pass_on(*turn)
            return await self._retry(store, key)
        task = self._keep(loop.create_task(self._process(store, key, message, turn)))
        await asyncio.wait({task, hung_up}, timeout=max(0.0, deadline - loop.time()), return_when="FIRST_COMPLETED")
        if task.done():
            return task.result()
        if await self._move(store, key, PROCESSING, PUSH):
            why = "WeChat hung up" if hung_up.done() else f"not ready in {self._config.reply_seconds:.1f} s"
            log.info("answer to %s %s: it will be pushed", messages.loggable(key), why)
            return []
        entry = await self._get(store, key)  # the answer came in the meantime
        return list(entry.replies) if entry and entry.state == ANSWERED else []

    async def _retry(self, store: DedupStore, key: str) -> list[str]:
        entry = await self._get(store, key)
        if entry is not None and entry.state == PROCESSING:
            if await self._move(store, key, PROCESSING, PUSH):
                log.info(
                    "WeChat retried %s while the bot works on it: the answer will be pushed", messages.loggable(key)
                )
                return []
            entry = await self._get(store, key)
        log.info(
            "WeChat retried %s (%s): not processed again", messages.loggable(key), entry.state if entry else "expired"
        )
        return list(entry.replies) if entry is not None and entry.state == ANSWERED else []

    async def _process(self, store: DedupStore, key: str, message: BaseMessage, turn: tuple) -> list[str]:
        """Work out the answer; return it for the passive reply, or push it if too late."""
        before, mine = turn
        try:
            if before is not None:
                await asyncio.wait({before})  # the follower's previous message first
            texts = await self._answer(key, message)
        except Exception:
            log.exception("WeChat message %s could not be processed", messages.loggable(key))
            texts = [messages.BOT_TROUBLE]
        finally:
            mine.set_result(None)
        passive, rest = messages.split_for_reply(texts)
        if rest and self._delivery.possible:
            passive, rest = [], texts  # all pushed, in order: a push would overtake the reply
        if await self._move(store, key, PROCESSING, ANSWERED, passive):
            if rest:
                await self.push(message.source, rest)
            return passive
        if texts:
            await self.push(message.source, texts)
        await self._move(store, key, PUSH, PUSHED)
        return []

    async def _answer(self, key: str, message: BaseMessage) -> list[str]:
        meaning = messages.meaning(message)
        openid = message.source
        if isinstance(meaning, messages.Answer):
            return list(meaning.texts)
        if isinstance(meaning, messages.Unfollowed):
            number = await self._off_loop(bindings.unbind, self._sessions(), openid)
            dropped = f"; binding to {mask_account(number)} dropped" if number else ""
            log.info("WeChat follower %s unfollowed%s", mask_openid(openid), dropped)
            return []
        if isinstance(meaning, messages.Unbind):
            number = await self._off_loop(bindings.unbind, self._sessions(), openid)
            if number:
                log.info("WeChat follower %s unbound from %s", mask_openid(openid), mask_account(number))
            return [messages.unbound(number) if number else messages.NOTHING_TO_UNBIND]
        if isinstance(meaning, messages.SharedLocation):
            area = await self._off_loop(known_area_in, self._utility(), meaning.label)
            if area is None:
                return [messages.NOT_UNDERSTOOD["location"] + messages.CAN_DO]
            meaning = messages.outage_request(area)
        return await self._ask(key, openid, meaning.text)

    async def _ask(self, key: str, openid: str, text: str) -> list[str]:
        """The bot's turn; a bound follower's 户号 is vouched for, and a binding made in this
        turn (the identity check just passed) is announced."""
        bound = await self._bound(openid)
        metadata: dict[str, Any] = {"wechat": {"message": key}}
        if bound:
            metadata["customer"] = vouch(bound, "wechat")
        async with self._turn_slot():
            said = await self._ask_bot(text, openid, metadata)
        texts = messages.texts_of(said)
        if bound is None:
            now_bound = await self._bound(openid)
            if now_bound:
                texts.append(messages.bound(now_bound))
        return texts

    async def _bound(self, openid: str) -> str | None:
        try:
            return await self._off_loop(bindings.bound_account, self._sessions(), openid)
        except SQLAlchemyError as error:
            log.warning("WeChat bindings unavailable (%s): the follower is treated as unbound", type(error).__name__)
            return None

    async def push(self, openid: str, texts: list[str]) -> int:
        """Send through the customer-service API, off the event loop; how many went out."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._delivery.push, openid, texts)
        except Exception:
            log.exception("push to WeChat follower %s failed", mask_openid(openid))
            return 0

    async def _move(self, store: DedupStore, key: str, from_state: str, to_state: str, replies=None) -> bool:
        try:
            return await self._off_loop(store.move, key, from_state, to_state, replies)
        except DedupUnavailable as error:
            # without the store, both sides lean to the push: the answer goes out late, not never
            log.error("WeChat dedup store unavailable (%s) moving %s to %s", error, messages.loggable(key), to_state)
            return to_state == PUSH

    async def _get(self, store: DedupStore, key: str) -> Entry | None:
        try:
            return await self._off_loop(store.get, key)
        except DedupUnavailable as error:
            log.error("WeChat dedup store unavailable (%s) reading %s", error, messages.loggable(key))
            return None

    def _queue(self, openid: str) -> tuple[asyncio.Future | None, asyncio.Future]:
        """A place in the follower's queue: the message before (None: none waiting) and this one."""
        before = self._last.get(openid)
        mine = asyncio.get_running_loop().create_future()
        self._last[openid] = mine
        mine.add_done_callback(lambda done: self._last.pop(openid) if self._last.get(openid) is done else None)
        return before, mine

    @staticmethod
    def _pass_on(before: asyncio.Future | None, mine: asyncio.Future) -> None:
        """A retry takes no turn: its place is done when the message before it is."""
        if before is None or before.done():
            mine.set_result(None)
        else:
            before.add_done_callback(lambda _: mine.set_result(None))

    def _turn_slot(self) -> asyncio.Semaphore:
        """At most `bot_concurrency` turns in the bot at once (one semaphore per event loop)."""
        loop = asyncio.get_running_loop()
        if self._turns is None or self._turns[0] is not loop:
            self._turns = (loop, asyncio.Semaphore(self._config.bot_concurrency))
        return self._turns[1]

    async def _off_loop(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._io, function, *args)

    def _keep(self, future: asyncio.Future) -> asyncio.Future:
        self._tasks.add(future)
        future.add_done_callback(self._tasks.discard)
        return future

    async def drain(self) -> None:
        """Wait for the answers still being worked out (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
