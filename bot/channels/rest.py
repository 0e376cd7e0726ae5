"""Rasa's REST channel (same name, URL /webhooks/rest/webhook, body and answer) where a
message may carry an id of the client's choosing, so that sending it again is safe:

    POST {"sender": "...", "message": "...", "metadata": {...}, "message_id": "c3f1..."}

With `message_id` (a string or number, 1 to 128 characters, unique per sender: a new one
for each message the customer types, the same one for every retry of it) the message is
processed once across all Rasa servers (bot/exactly_once.py says how):
  200  the replies: of this delivery's turn, or the same ones kept from an earlier delivery
  202  `[{"recipient_id": ..., "text": <STILL_WORKING, a polite "please wait">}]` with
       Retry-After: an earlier delivery is still being worked on after `wait_seconds`;
       send it again later
  400  a `message_id` that is not a short string or number
  500  `[]`: the turn failed and was not saved; sending it again processes it
Without `message_id` (or with `?stream=true`) Rasa's REST channel answers, unchanged.

credentials.yml, instead of `rest:` (the values are the defaults):

    bot.channels.rest.IdempotentRestInput:
      claim_seconds: 10   # a dead server's claim lapses after this; below the client's retry horizon
      wait_seconds: 10    # how long a repeated delivery waits for the first one's replies
      keep_seconds: 600   # how long replies are kept for repeated deliveries

The claims are kept in Redis when REDIS_URL is set (the database while Redis does not
answer), else in the database (DATABASE_URL).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.rest import RestInput
from rasa.utils.endpoints import bool_arg
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.dedup import store_for
from bot.exactly_once import ExactlyOnce

log = logging.getLogger(__name__)

MAX_MESSAGE_ID_LENGTH = 128
RETRY_AFTER_SECONDS = 2


class IdempotentRestInput(RestInput):
    """Rasa's `RestInput`, plus exactly-once processing of messages that carry `message_id`."""

    @classmethod
    def name(cls) -> str:
        return "rest"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> IdempotentRestInput:
        given = credentials or {}
        return cls(
            claim_seconds=int(given.get("claim_seconds", 10)),
            wait_seconds=float(given.get("wait_seconds", 10)),
            keep_seconds=int(given.get("keep_seconds", 600)),
        )

    def __init__(self, claim_seconds: int = 10, wait_seconds: float = 10, keep_seconds: int = 600) -> None:
        if claim_seconds < 3 or wait_seconds < 0 or keep_seconds < claim_seconds:
            raise ValueError("REST channel: claim_seconds >= 3, wait_seconds >= 0, keep_seconds >= claim_seconds")
        self.claim_seconds, self.wait_seconds, self.keep_seconds = claim_seconds, wait_seconds, keep_seconds

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = super().blueprint(on_new_message)
        store = store_for(os.environ.get("REDIS_URL", "").strip(), self.claim_seconds, "rest")
        once = ExactlyOnce(store, self.claim_seconds, self.wait_seconds, self.keep_seconds)

        @webhook.on_request  # runs before RestInput's handler; an answer here is the answer
        async def exactly_once(request: Request) -> HTTPResponse | None:
            if request.method != "POST" or bool_arg(request, "stream", default=False):
                return None
            body = request.json
            if not isinstance(body, dict) or body.get("message_id") is None:
                return None
            message_id = body["message_id"]
            if isinstance(message_id, bool) or not isinstance(message_id, str | int):
                return _bad_message_id()
            message_id = str(message_id).strip()
            if not 0 < len(message_id) <= MAX_MESSAGE_ID_LENGTH:
                return _bad_message_id()
            agent = request.app.ctx.agent
            if not agent.is_ready():
                return None  # as Rasa's channel: nothing said, nothing kept
            message = UserMessage(
                self._extract_message(request),
                CollectingOutputChannel(),
                await self._extract_sender(request),
                input_channel=self._extract_input_channel(request),
                message_id=message_id,
                metadata=self.get_metadata(request),
            )
            try:
                answer = await once.answer(agent, message)
            except Exception:
                log.exception("message %s of %s could not be processed", message_id, message.sender_id)
                return response.json([], status=500)
            if answer.done:
                return response.json(answer.replies)
            return response.json(answer.replies, status=202, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

        return webhook


def _bad_message_id() -> HTTPResponse:
    return response.json(
        {"error": f"message_id must be a string or number of 1 to {MAX_MESSAGE_ID_LENGTH} characters"}, status=400
    )
