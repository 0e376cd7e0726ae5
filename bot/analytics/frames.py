"""aiormq's frame reader with one timer a frame instead of one task and timer a read.

aiormq 6.4 (aio-pika's AMQP client) reads each frame of a connection in three reads
under a lock, and wraps the lock and each read in `asyncio.wait_for`: four or five tasks
and timers a frame, three frames a delivered message. For the analytics consumer, which
takes every event of every conversation (about 16 a customer's message), that machinery
was most of its CPU (bench/RESULTS.md, issue 8). This reader keeps aiormq's deadline for
the whole frame, its errors and its messages, with a single `async_timeout` around it.
"""

from __future__ import annotations

import asyncio

import aiormq.connection
import async_timeout
import pamqp.frame
from pamqp.exceptions import AMQPFrameError, AMQPInternalError, AMQPSyntaxError

_installed = False


async def _get_frame(self: aiormq.connection.FrameReceiver) -> aiormq.connection.ReceivedFrame:
    """FrameReceiver.get_frame of aiormq 6.4 under one deadline."""
    if self.reader.at_eof():
        del self.reader
        raise StopAsyncIteration
    try:
        async with async_timeout.timeout(self.timeout), self.lock:
            frame_header = await self.reader.readexactly(1)
            if frame_header == b"\0x00":  # (sic) as aiormq compares it
                raise AMQPFrameError(await self.reader.read())
            if self.reader is None:
                raise ConnectionError
            frame_header += await self.reader.readexactly(6)
            if not self.started and frame_header.startswith(b"AMQP"):
                raise AMQPSyntaxError
            self.started = True
            _frame_type, _channel, frame_length = pamqp.frame.frame_parts(frame_header)
            if frame_length is None:
                raise AMQPInternalError("No frame length", None)
            frame_payload = await self.reader.readexactly(frame_length + 1)
    except asyncio.IncompleteReadError as error:
        raise AMQPFrameError("Server connection unexpectedly closed") from error
    except asyncio.TimeoutError as error:
        raise asyncio.TimeoutError(
            f"Server connection was stucked. No frames were received in {self.timeout} seconds."
        ) from error
    return pamqp.frame.unmarshal(frame_header + frame_payload)


def install() -> None:
    """Read frames this way in this process (once; only on the aiormq it was written for)."""
    global _installed
    if _installed or not aiormq.__version__.startswith("6.4."):
        return
    _installed = True
    aiormq.connection.FrameReceiver.get_frame = _get_frame
