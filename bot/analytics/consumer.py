"""The analytics consumer: takes Rasa's events from RabbitMQ and counts each one once into
the database (bookkeeping.py), so the dashboard reads figures instead of trackers.
`python -m bot analytics consume [--queue NAME] [--once]`.

Rasa's `pika` event broker publishes every tracker event to a fanout exchange bound to the
queues named in endpoints.yml. The consumer declares the same exchange and queue (as Rasa
does, so whichever starts first, nothing is lost) and reads them with aio-pika, the client
Rasa itself uses.

RabbitMQ delivers at least once. A message is acknowledged only after the transaction
that counted it has committed; a second delivery finds its key counted and is acknowledged
with no change. Keys are kept ANALYTICS_KEEP_KEYS_HOURS (48) after counting, far longer
than a redelivery can take, and then forgotten, so that the table does not grow for ever.
A message that is not an event is logged, personal data masked, and
rejected without requeue (a dead-letter exchange on the queue keeps it, if there is one).
When the database does not answer, the message goes back to the queue and the consumer
lets go of the queue and waits before taking it again; when RabbitMQ goes away it
reconnects. Both wait 1 s, doubling to at most 30 s, and say so in the log.

Run one consumer per queue to keep the events in order; a second one (for availability)
keeps the counts exact too, only a conversation's start may then come from a message that
was not its first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from aiormq.tools import censor_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import sessionmaker
from yarl import URL

from bot import clock
from bot.analytics import bookkeeping, frames
from bot.config import load_settings
from bot.masking import redact

log = logging.getLogger(__name__)
frames.install()  # the consumer reads every event: aiormq's frame reading at a lower cost

PREFETCH = 50  # messages RabbitMQ hands over before their acks; counted in order, in batches
# how long a batch waits for more events after its first: a turn's events arrive within
# milliseconds of each other, and a transaction for every few of them cost a fifth of a
# core at ten customers (bench/RESULTS.md); the dashboard is that much later
LINGER_SECONDS = 0.2
CONNECT_TIMEOUT = 10.0  # seconds
FORGET_EVERY_SECONDS = 600.0  # how often the keys of events counted long ago are forgotten
EXCERPT = 200  # characters of a rejected message shown in the log


class Unavailable(Exception):
    """RabbitMQ or the database did not answer."""


class BrokerUnavailable(Unavailable):
    """RabbitMQ did not answer, or closed the channel."""


class DatabaseUnavailable(Unavailable):
    """The database did not answer: the message went back to the queue."""


@dataclass
class Tally:
    counted: int = 0
    repeated: int = 0  # delivered again, counted before
    rejected: int = 0
    ignored: int = 0  # changes no figure: acknowledged, not written (bookkeeping.StreamEvent.counts)


@dataclass
class Backoff:
    """Waits between attempts: `first` seconds, doubling up to `longest`."""

    first: float = 1.0
    longest: float = 30.0
    failures: int = 0

    def next_delay(self) -> float:
        delay = min(self.longest, self.first * 2**self.failures)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0


class Consumer:
    """Reads one queue of Rasa's events into the analytics tables of one database."""

    def __init__(
        self,
        sessions: sessionmaker,
        rabbitmq_url: str,
        queue: str,
        exchange: str,
        backoff: Backoff | None = None,
        keep_keys: timedelta | None = None,
    ) -> None:
        self.sessions = sessions
        self.url = rabbitmq_url
        self.queue_name = queue
        self.exchange_name = exchange  # Rasa's fanout exchange, "rasa-exchange" unless endpoints.yml names another
        self.backoff = backoff or Backoff()
        # far beyond any redelivery, which comes when the consumer reconnects
        if keep_keys is None:
            keep_keys = timedelta(hours=load_settings().analytics_keep_keys_hours)
        self.keep_keys = keep_keys
        self.tally = Tally()
        self._failing: type[Unavailable] | None = None  # what the consumer is waiting for

    async def run(self) -> None:
        """Count events as they arrive, until cancelled, whatever goes away meanwhile; and
        now and then forget the keys of events counted long ago."""
        forgetting = asyncio.create_task(self._keep_forgetting())
        try:
            while True:
                try:
                    async with self._queue() as (channel, queue):
                        self._recovered(BrokerUnavailable)
                        await self._consume(channel, queue)
                except Unavailable as error:
                    self._failing = type(error)
                    delay = self.backoff.next_delay()
                    log.warning("analytics consumer: %s; trying again in %g s", error, delay)
                    await asyncio.sleep(delay)
        finally:
            forgetting.cancel()

    async def forget(self) -> int:
        """Forget the keys counted more than `keep_keys` ago: how many. A database that does
        not answer is logged and tried the next time; the counting goes on meanwhile."""
        try:
            forgotten = await asyncio.to_thread(bookkeeping.forget_counted, self.sessions, clock.now() - self.keep_keys)
        except SQLAlchemyError as error:
            log.warning("analytics consumer: could not forget old event keys (%s)", _reason(error))
            return 0
        if forgotten:
            log.info("analytics consumer: forgot the keys of %d events counted more than %g hours ago", forgotten,
                     self.keep_keys.total_seconds() / 3600)  # fmt: skip
        return forgotten

    async def _keep_forgetting(self) -> None:
        while True:
            await self.forget()
            await asyncio.sleep(FORGET_EVERY_SECONDS)

    def _recovered(self, kind: type[Unavailable]) -> None:
        """What failed answers again: say so, and make the next wait a short one again."""
        if self._failing is kind:
            log.info("analytics consumer: %s again", "connected to RabbitMQ" if kind is BrokerUnavailable else
                     "the database answers")  # fmt: skip
            self._failing = None
            self.backoff.reset()

    async def drain(self) -> Tally:
        """Count what the queue holds now and forget old keys, then return; Unavailable if
        RabbitMQ or the database does not answer (nothing is lost: what was not counted
        stays queued)."""
        async with self._queue() as (_channel, queue):
            while (message := await queue.get(fail=False)) is not None:
                await self._handle(message)
        await self.forget()
        return self.tally

    @asynccontextmanager
    async def _queue(self) -> AsyncIterator[tuple[AbstractChannel, AbstractQueue]]:
        """A channel on a new connection and the queue as Rasa's broker declares it (durable,
        bound to its fanout exchange)."""
        try:
            async with await aio_pika.connect(self.url, timeout=CONNECT_TIMEOUT) as connection:
                channel = await connection.channel()
                await channel.set_qos(prefetch_count=PREFETCH)
                exchange = await channel.declare_exchange(self.exchange_name, aio_pika.ExchangeType.FANOUT)
                queue = await channel.declare_queue(self.queue_name, durable=True)
                await queue.bind(exchange, "")
                yield channel, queue
        except (*CONNECTION_EXCEPTIONS, asyncio.TimeoutError) as error:
            raise BrokerUnavailable(f"RabbitMQ at {censor_url(URL(self.url))}: {_reason(error)}") from error

    async def _consume(self, channel: AbstractChannel, queue: AbstractQueue) -> None:
        """Count the deliveries in order, until the channel closes: those that arrived
        meanwhile together, in one transaction."""
        deliveries: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        closed = asyncio.get_running_loop().create_future()

        def on_close(_channel: object, error: BaseException | None) -> None:
            if not closed.done():
                closed.set_result(error)

        channel.close_callbacks.add(on_close)
        await queue.consume(deliveries.put)
        log.info("analytics consumer: reading queue %r", self.queue_name)
        while True:
            delivery = asyncio.ensure_future(deliveries.get())
            await asyncio.wait({delivery, closed}, return_when=asyncio.FIRST_COMPLETED)
            if not delivery.done():
                delivery.cancel()
                raise BrokerUnavailable(f"RabbitMQ closed the channel ({_reason(closed.result())})")
            await self._handle_batch(await _batch(delivery.result(), deliveries))

    async def _handle_batch(self, messages: list[AbstractIncomingMessage]) -> None:
        """Count a batch in one transaction, messages that are not events rejected apart.
        A batch the counting fails on (an event it cannot take) is counted message by
        message, so that only the bad one is rejected."""
        taken: list[tuple[AbstractIncomingMessage, bookkeeping.StreamEvent]] = []
        for message in messages:
            if (event := await self._parse(message)) is not None:
                taken.append((message, event))
        if not taken:
            return
        try:
            counted = await asyncio.to_thread(bookkeeping.record_all, self.sessions, [event for _, event in taken])
        except SQLAlchemyError as error:
            if _unavailable(error):
                for message, _event in taken:
                    await message.nack(requeue=True)
                raise DatabaseUnavailable(f"database unavailable ({_reason(error)})") from error
            counted = None
        except Exception:  # found and rejected one message at a time below
            counted = None
        if counted is None:
            for message, event in taken:
                await self._count(message, event)
            return
        # one acknowledgement for the batch: the deliveries before its last are all settled
        # (acknowledged earlier, or rejected above) but for those of the batch itself
        await taken[-1][0].ack(multiple=True)
        self._recovered(DatabaseUnavailable)
        self._tell(counted)

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        if (event := await self._parse(message)) is not None:
            await self._count(message, event)

    async def _parse(self, message: AbstractIncomingMessage) -> bookkeeping.StreamEvent | None:
        """The message's event; None for a message that is not one, rejected and logged."""
        try:
            return bookkeeping.parse(message.body)
        except bookkeeping.MalformedEvent as error:
            log.warning("analytics consumer: rejected a message that is not a Rasa event (%s): %s", error,
                        _excerpt(message.body))  # fmt: skip
            await message.reject(requeue=False)
            self.tally.rejected += 1
            return None

    async def _count(self, message: AbstractIncomingMessage, event: bookkeeping.StreamEvent) -> None:
        try:
            counted = await asyncio.to_thread(bookkeeping.record, self.sessions, event)
        except SQLAlchemyError as error:
            if not _unavailable(error):
                await self._poison(message, event, error)
                return
            await message.nack(requeue=True)
            raise DatabaseUnavailable(f"database unavailable ({_reason(error)})") from error
        except Exception as error:  # a bug meeting an odd event must not stop the counting
            await self._poison(message, event, error)
            return
        await message.ack()
        self._recovered(DatabaseUnavailable)
        self._tell([counted])

    def _tell(self, counted: list[bool | None]) -> None:
        """Add what bookkeeping.record_all said of each event to the tally."""
        self.tally.counted += counted.count(True)
        self.tally.repeated += counted.count(False)
        self.tally.ignored += counted.count(None)

    async def _poison(self, message: AbstractIncomingMessage, event: bookkeeping.StreamEvent, error: Exception) -> None:
        log.error("analytics consumer: rejected %s event %s that could not be counted (%s)",
                  event.kind, event.key[:12], _reason(error))  # fmt: skip
        # the traceback only on request: a database error's text carries the event's values
        log.debug("analytics consumer: why %s could not be counted", event.key[:12], exc_info=error)
        await message.reject(requeue=False)
        self.tally.rejected += 1


async def _batch(
    first: AbstractIncomingMessage, deliveries: asyncio.Queue[AbstractIncomingMessage]
) -> list[AbstractIncomingMessage]:
    """`first` and what arrives within LINGER_SECONDS after it, up to PREFETCH messages."""
    batch = [first]
    give_up = asyncio.get_running_loop().time() + LINGER_SECONDS
    while len(batch) < PREFETCH:
        if not deliveries.empty():
            batch.append(deliveries.get_nowait())
            continue
        left = give_up - asyncio.get_running_loop().time()
        if left <= 0:
            break
        try:
            batch.append(await asyncio.wait_for(deliveries.get(), left))
        except asyncio.TimeoutError:
            break
    return batch


def _unavailable(error: SQLAlchemyError) -> bool:
    """The database did not answer (or asked to be tried again): not the event's fault."""
    if isinstance(error, (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


def _reason(error: BaseException | None) -> str:
    if error is None:
        return "closed"
    return f"{type(error).__name__}: {str(error).splitlines()[0][:200]}" if str(error) else type(error).__name__


def _excerpt(body: bytes) -> str:
    """The start of a message, personal data replaced by placeholders."""
    text = body[: EXCERPT * 4].decode("utf-8", "replace")[:EXCERPT]
    return repr(redact(text))
