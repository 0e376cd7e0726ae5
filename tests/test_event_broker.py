"""The Rasa servers' event broker (bot/event_broker.py) against the real RabbitMQ: a turn's
events are handed to the connection, and their tasks are done, within a few turns of the
event loop, where Rasa's own broker needs turns of the loop for each event and keeps a
task waiting for each (the backlog that grew in the Rasa servers under load); every event
reaches the queue once, in order."""

from __future__ import annotations

import asyncio
import json
import uuid

import aio_pika
import pytest
from rasa.core.brokers.pika import PikaEventBroker as RasaPikaEventBroker

from bot.event_broker import PikaEventBroker
from tests.event_stream import RABBITMQ_HOST, RABBITMQ_PORT, RABBITMQ_URL

EVENTS_A_TURN = 16  # a complaint's turn streams about this many events
LOOP_TURNS = 3  # how many turns of the event loop the broker gets after a turn's publishes


def _events(sender: str, count: int) -> list[dict]:
    return [{"sender_id": sender, "event": "slot", "name": "n", "value": i, "timestamp": i} for i in range(count)]


async def _handed_over(broker_class: type[RasaPikaEventBroker]) -> tuple[int, int, list[dict], list[dict]]:
    """Publish a turn's events, give the loop LOOP_TURNS turns, and count the frames handed
    to the connection and the publishing tasks still waiting; then the events the queue
    holds once all are done."""
    run = uuid.uuid4().hex[:10]
    queue_name, exchange = f"test-broker-{run}", f"test-broker-exchange-{run}"
    broker = broker_class(
        RABBITMQ_HOST, "guest", "guest", port=RABBITMQ_PORT, queues=[queue_name], exchange_name=exchange,
        event_loop=asyncio.get_running_loop(),
    )  # fmt: skip
    await broker.connect()
    try:
        channel = broker._exchange.channel
        first_tag = channel.delivery_tag
        events = _events(f"broker-{run}", EVENTS_A_TURN)
        for event in events:  # as Rasa's tracker store streams a turn's events
            broker.publish(event)
        for _ in range(LOOP_TURNS):
            await asyncio.sleep(0)
        handed_over, waiting = channel.delivery_tag - first_tag, len(broker._background_tasks)
        await asyncio.wait_for(asyncio.gather(*broker._background_tasks), 30)
        received = await _take_all(queue_name, len(events))
        return handed_over, waiting, events, received
    finally:
        await broker.close()
        async with await aio_pika.connect(RABBITMQ_URL) as connection:
            cleanup = await connection.channel()
            await cleanup.queue_delete(queue_name)
            await cleanup.exchange_delete(exchange)


async def _take_all(queue_name: str, count: int) -> list[dict]:
    async with await aio_pika.connect(RABBITMQ_URL) as connection:
        queue = await (await connection.channel()).declare_queue(queue_name, passive=True)
        taken = []
        while len(taken) < count:
            message = await queue.get(timeout=10, fail=False)
            if message is None:
                break
            taken.append(json.loads(message.body))
            await message.ack()
        return taken


@pytest.mark.parametrize("broker_class", [PikaEventBroker, RasaPikaEventBroker], ids=["ours", "rasa"])
def test_every_event_reaches_the_queue_once_in_order(broker_class: type[RasaPikaEventBroker]) -> None:
    *_, events, received = asyncio.run(_handed_over(broker_class))
    assert received == events


def test_a_turns_events_are_handed_over_at_once_where_rasas_broker_takes_turns_of_the_loop() -> None:
    ours, ours_waiting, *_ = asyncio.run(_handed_over(PikaEventBroker))
    rasas, rasas_waiting, *_ = asyncio.run(_handed_over(RasaPikaEventBroker))
    assert (ours, ours_waiting) == (EVENTS_A_TURN, 0)
    # Rasa's: each event waits for the previous one's frame to be written, then for its
    # confirmation (the cause)
    assert rasas < EVENTS_A_TURN / 2 and rasas_waiting > EVENTS_A_TURN / 2, (rasas, rasas_waiting)
