"""The analytics consumer's frame reader (bot/analytics/frames.py) reads what aiormq's
reads, fails as aiormq's fails, and is the one the consumer's connections use."""

from __future__ import annotations

import asyncio

import pamqp.frame
import pytest
from aiormq.connection import FrameReceiver
from pamqp import commands
from pamqp.exceptions import AMQPFrameError

import bot.analytics.consumer  # noqa: F401  (installs the reader, as the consumer process does)
from bot.analytics import frames

DELIVER = commands.Basic.Deliver("consumer-1", 7, False, "rasa-exchange", "")


async def _read(data: bytes, eof: bool, timeout: float | None) -> object:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return await FrameReceiver(reader, timeout).get_frame()


def test_the_consumer_reads_frames_with_one_deadline_a_frame() -> None:
    assert FrameReceiver.get_frame is frames._get_frame


def test_a_frame_reads_back_as_aiormq_reads_it() -> None:
    wire = pamqp.frame.marshal(DELIVER, 1) + pamqp.frame.marshal(commands.Basic.Ack(3), 2)
    _consumed, channel, frame = asyncio.run(_read(wire, eof=False, timeout=5))
    assert channel == 1 and frame.delivery_tag == 7 and frame.exchange == "rasa-exchange"


def test_a_frame_cut_short_is_a_frame_error() -> None:
    with pytest.raises(AMQPFrameError, match="unexpectedly closed"):
        asyncio.run(_read(pamqp.frame.marshal(DELIVER, 1)[:-3], eof=True, timeout=5))


def test_a_frame_that_stops_coming_is_a_timeout() -> None:
    with pytest.raises(asyncio.TimeoutError, match="No frames were received in 0.2 seconds"):
        asyncio.run(_read(pamqp.frame.marshal(DELIVER, 1)[:5], eof=False, timeout=0.2))
