"""Rasa's event stream in tests: the real RabbitMQ on 127.0.0.1:5672 (guest/guest) with a
queue and a fanout exchange of the test's own, the Rasa servers' event broker
(bot/event_broker.py) publishing to them, and conversations written as the events Rasa's
tracker store streams."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aio_pika
import pytest
from rasa.shared.core.events import ActionExecuted, BotUttered, Event, SessionStarted, SlotSet, UserUttered

from bot.analytics.consumer import Backoff, Consumer, Tally
from bot.analytics.models import ConversationFactsRow, DayFiguresRow
from bot.config import load_settings
from bot.event_broker import PikaEventBroker

RABBITMQ_HOST, RABBITMQ_PORT = "127.0.0.1", 5672
RABBITMQ_URL = f"amqp://guest:guest@{RABBITMQ_HOST}:{RABBITMQ_PORT}/%2F"
LOCAL = ZoneInfo(load_settings().timezone)


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll until `condition` gives something true, and return it."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.05)
    return result


class Conversation:
    """One conversation's events as Rasa's tracker store streams them to the broker
    (`{"sender_id": ..., **event.as_dict()}`), a second apart from `start` on."""

    def __init__(self, start: datetime, channel: str = "socketio") -> None:
        self.sender = f"analytics-{uuid.uuid4().hex[:12]}"
        self.channel = channel
        self.moment = start
        self.events: list[dict] = []

    def _stream(self, event: Event) -> Conversation:
        event.timestamp = self.moment.replace(tzinfo=LOCAL).timestamp()
        self.events.append({"sender_id": self.sender, **event.as_dict()})
        self.moment += timedelta(seconds=1)
        return self

    def at(self, moment: datetime) -> Conversation:
        self.moment = moment
        return self

    def opened(self) -> Conversation:
        for event in (ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen")):
            self._stream(event)
        return self

    def says(self, text: str, intent: str) -> Conversation:
        return self._stream(UserUttered(text, {"name": intent, "confidence": 0.9}, input_channel=self.channel))

    def does(self, *actions: str) -> Conversation:
        for action in actions:
            self._stream(ActionExecuted(action, policy="RulePolicy", confidence=1.0))
        return self

    def sets(self, slot: str, value: Any) -> Conversation:
        return self._stream(SlotSet(slot, value))

    def answers(self, text: str) -> Conversation:
        return self._stream(BotUttered(text))

    def agent_writes(self, text: str) -> Conversation:
        """What the console's trigger_intent puts in the tracker: an external intent, not the customer."""
        self._stream(UserUttered.create_external("EXTERNAL_agent_reply", input_channel=self.channel))
        return self.does("action_agent_reply").answers(text)

    def time_of(self, kind: str, **fields: Any) -> datetime:
        """The local time of the first event of that kind with those fields."""
        event = next(e for e in self.events if e["event"] == kind and all(e.get(k) == v for k, v in fields.items()))
        return datetime.fromtimestamp(event["timestamp"], LOCAL).replace(tzinfo=None, microsecond=0)


class Rabbit:
    """The real RabbitMQ with a queue and a fanout exchange of the test's own, the Rasa
    servers' PikaEventBroker publishing to them, and an event loop in a thread that the broker and
    the consumers run on."""

    def __init__(self) -> None:
        run = uuid.uuid4().hex[:10]
        self.queue, self.exchange = f"test-analytics-{run}", f"test-rasa-exchange-{run}"
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.broker = self.run(self._broker())

    def run(self, coroutine: Any, timeout: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    async def _broker(self) -> PikaEventBroker:
        broker = PikaEventBroker(
            RABBITMQ_HOST, "guest", "guest", port=RABBITMQ_PORT, queues=[self.queue],
            exchange_name=self.exchange, event_loop=self.loop,
        )  # fmt: skip
        await broker.connect()  # declares the exchange and the queue, as the Rasa server does
        return broker

    def publish(self, events: list[dict]) -> None:
        """Publish as Rasa's tracker store does: one broker.publish per event, in order."""
        for event in events:
            self.loop.call_soon_threadsafe(self.broker.publish, event)

    def publish_raw(self, body: bytes) -> None:
        """A message that did not come from Rasa, straight into the queue."""

        async def send() -> None:
            async with await aio_pika.connect(RABBITMQ_URL) as connection:
                channel = await connection.channel()
                await channel.default_exchange.publish(aio_pika.Message(body), routing_key=self.queue)

        self.run(send())

    def queued(self) -> int:
        """Messages ready in the queue (not those a consumer holds unacknowledged)."""

        async def count() -> int:
            async with await aio_pika.connect(RABBITMQ_URL) as connection:
                queue = await (await connection.channel()).declare_queue(self.queue, passive=True)
                return queue.declaration_result.message_count

        return self.run(count())

    def wait_queued(self, count: int) -> None:
        wait_for(lambda: self.queued() == count, f"{count} messages in the queue")

    def consumer(self, sessions, url: str = RABBITMQ_URL) -> Consumer:
        return Consumer(sessions, url, self.queue, self.exchange, Backoff(first=0.1, longest=0.5))

    def drain(self, consumer: Consumer) -> Tally:
        return self.run(consumer.drain())

    @contextlib.contextmanager
    def consuming(self, consumer: Consumer) -> Iterator[None]:
        """The consumer running as `python -m bot analytics consume` runs it, until the block ends."""
        async def start() -> asyncio.Task:
            return asyncio.ensure_future(consumer.run())

        async def stop(running: asyncio.Task) -> None:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running

        running = self.run(start())
        try:
            yield
        finally:
            self.run(stop(running))

    def take_without_ack(self, work: Callable[[bytes], Any]) -> Any:
        """Take the first message, do `work` with its body, and drop the connection before
        acknowledging it: a consumer dying between its commit and its ack."""

        async def take() -> Any:
            async with await aio_pika.connect(RABBITMQ_URL) as connection:
                queue = await (await connection.channel()).declare_queue(self.queue, passive=True)
                message = await queue.get()
                return await asyncio.to_thread(work, message.body)

        return self.run(take())

    def close(self) -> None:
        async def delete() -> None:
            await self.broker.close()
            async with await aio_pika.connect(RABBITMQ_URL) as connection:
                channel = await connection.channel()
                await channel.queue_delete(self.queue)
                await channel.exchange_delete(self.exchange)
            leftovers = asyncio.all_tasks() - {asyncio.current_task()}  # the broker's, winding down
            for task in leftovers:
                task.cancel()
            await asyncio.gather(*leftovers, return_exceptions=True)

        try:
            self.run(delete())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            self.loop.close()


def open_rabbit() -> Rabbit:
    """A queue and an exchange of the test's own on the real RabbitMQ (the test fails without it)."""
    try:
        return Rabbit()
    except (OSError, aio_pika.exceptions.AMQPError) as error:
        pytest.fail(f"RabbitMQ is not reachable at {RABBITMQ_HOST}:{RABBITMQ_PORT} ({error})")


def facts(sessions, conversation_id: str) -> ConversationFactsRow | None:
    """The conversation's row in the analytics tables."""
    with sessions() as session:
        return session.get(ConversationFactsRow, conversation_id)


def day_figures(sessions, day: date) -> tuple[int, int, int, int, int] | None:
    """(conversations, handed over, messages, relayed, fallbacks) of the day."""
    with sessions() as session:
        row = session.get(DayFiguresRow, day)
        return row and (row.conversations, row.handed_over, row.messages, row.relayed, row.fallbacks)
