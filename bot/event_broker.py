"""Rasa's RabbitMQ event broker without the backlog that grew in the Rasa servers under load.

Rasa publishes every event of a turn as a task of its own (`PikaEventBroker.publish`) on
a channel with publisher confirms: each task holds the channel's lock until its frame is
written out, then waits for RabbitMQ's confirmation, which aiormq takes in a frame or
more per turn of the event loop. Under a steady load the loop is busy with turns (the NLU
and the policies run in it), and the tasks pile up faster than confirmations come back:
in a 30-minute soak each Rasa server grew by about 3 GB, nearly all of it events waiting
(bench/RESULTS.md, "Where the Rasa servers' memory went"). A loop blocked 20 ms in every
turn with a turn's 16 events each time left 9,561 of 9,600 events waiting at the end.

Here the channel has no publisher confirms, and a frame is only handed to the writer
(aiormq's `wait=False`), into a buffer of WRITE_BUFFER_FRAMES frames instead of aiormq's
10: a publish never waits, so no task is left behind (16 of 9,600 in the same test, and
less CPU). Nor is each event deep-copied for a debug line (Rasa copies it to drop the
NLU's parse data, for a line that is off at the INFO level).

What that gives up: an event whose frame was still on its way when the connection to
RabbitMQ broke is lost to the event stream (the tracker store has every event; the
dashboard's figures and the recovery worker, fed from the stream, miss it). An event
published while the channel is closed is kept and sent again once the connection is
back, as by Rasa's broker (`should_keep_unpublished_messages`), and logged with its kind
and conversation, not what the customer said.

endpoints.yml:  event_broker: {type: bot.event_broker.PikaEventBroker, ...Rasa's pika settings}
"""

from __future__ import annotations

import logging
from typing import Any

import aiormq
from rasa.core.brokers.pika import PikaEventBroker as RasaPikaEventBroker

log = logging.getLogger(__name__)

# frames waiting for the connection's writer before a publish waits for room: a few
# hundred turns' events, a few megabytes at most
WRITE_BUFFER_FRAMES = 4096


class PikaEventBroker(RasaPikaEventBroker):
    """Rasa's `PikaEventBroker` (same settings), publishing without a wait per event."""

    async def connect(self) -> None:
        """Rasa's `connect`, on a channel without publisher confirms."""
        # aiormq sizes every connection's write buffer from this class attribute (the
        # broker's connections, and its reconnections, are the only ones in a Rasa server)
        aiormq.Connection.FRAME_BUFFER_SIZE = max(aiormq.Connection.FRAME_BUFFER_SIZE, WRITE_BUFFER_FRAMES)
        self._connection = await self._connect()
        self._connection.reconnect_callbacks.add(self._publish_unpublished_messages)
        log.info("RabbitMQ connection to %r established (no publisher confirms)", self.host)
        channel = await self._connection.channel(publisher_confirms=False)
        self._exchange = await self._set_up_exchange(channel)

    async def _publish(self, event: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        if self._exchange is None:
            return
        message = self._message(event, headers)
        try:
            # as aio-pika's Exchange.publish, but the frame is only queued for the writer
            await self._exchange.channel.basic_publish(
                message.body,
                exchange=self._exchange.name,
                routing_key="",
                properties=message.properties,
                wait=False,
            )
        except Exception as error:
            # what the customer said stays out of the log (Rasa logs the whole event)
            log.error(
                "%r event of conversation %s not published to RabbitMQ (%s: %s)",
                event.get("event"),
                event.get("sender_id"),
                type(error).__name__,
                error,
            )
            if self.should_keep_unpublished_messages:
                self._unpublished_events.append(event)
            if self.raise_on_failure:
                await self.close()
                raise
