"""The WeChat official account as a Rasa channel named `wechat`: WeChat calls
/webhooks/wechat/webhook, GET to verify the server URL, POST with every message and event.
Configured in credentials.yml (`bot.channels.wechat.WeChatInput`, docs/wechat.md).

Only HTTP lives here: the request is checked and opened (bot.wechat.envelope), the message
goes to the inbox (bot.wechat.inbox), which hands it to Rasa as a UserMessage once and says
what to answer now; later words (slow answers, agents' replies) go out through the output
channel and the customer-service API.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.config import load_settings
from bot.db import session_factory
from bot.dedup import store_for
from bot.masking import install_log_masking
from bot.utility import utility_data
from bot.wechat import envelope, messages
from bot.wechat.api import WeChatApi
from bot.wechat.config import WeChatConfig
from bot.wechat.delivery import Delivery
from bot.wechat.envelope import Refused
from bot.wechat.inbox import Inbox

log = logging.getLogger(__name__)


class WeChatInput(InputChannel):
    @classmethod
    def name(cls) -> str:
        return "wechat"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> WeChatInput:
        return cls(WeChatConfig.from_credentials(credentials))

    def __init__(self, config: WeChatConfig) -> None:
        self.config = config
        api = None
        if config.can_push:
            api = WeChatApi(config.api_url, config.app_id, config.app_secret, config.api_timeout_seconds)
        self._delivery = Delivery(api, session_factory)
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="wechat-push")
        self.inbox: Inbox | None = None
        install_log_masking()  # phones and 户号 in any of the Rasa server's log lines
        _log_state(config)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint("wechat_webhook", __name__)
        config = self.config

        async def ask(text: str, sender: str, metadata: dict[str, Any]) -> list[dict[str, Any]]:
            turn = WeChatTurn(self._push)
            try:
                await on_new_message(UserMessage(text, turn, sender, input_channel=self.name(), metadata=metadata))
            finally:
                turn.closed = True
            return turn.messages

        if config.enabled:
            store = store_for(config.redis_url, config.dedup_seconds, "wechat")
            self.inbox = Inbox(config, store, self._delivery, ask, self._executor, session_factory, utility_data)

        @webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok" if config.enabled else "off"})

        @webhook.route("/webhook", methods=["GET"])
        async def verify(request: Request) -> HTTPResponse:
            if self.inbox is None:
                return _off(request)
            try:
                return response.text(envelope.verify_url(config, _args(request), time.time()))
            except Refused as refusal:
                return _refuse(request, refusal)

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            if self.inbox is None:
                return _off(request)
            try:
                opened = envelope.open_request(config, _args(request), request.body or b"", time.time())
                message = envelope.parse(opened)
            except Refused as refusal:
                return _refuse(request, refusal)
            texts = await self.inbox.receive(message)
            if not texts:
                return response.text("success")
            reply = envelope.seal(config, opened, messages.passive_reply(message, texts))
            return response.text(reply, content_type="application/xml; charset=utf-8")

        return webhook

    def get_output_channel(self) -> OutputChannel | None:
        """For what the bot says outside a customer's turn (agents' replies through
        trigger_intent with output_channel=latest): pushed through the API."""
        if self.inbox is None or not self._delivery.possible:
            return None
        return WeChatOutput(self._push)

    async def _push(self, openid: str, texts: list[str]) -> int:
        return await self.inbox.push(openid, texts) if self.inbox is not None else 0


class WeChatTurn(CollectingOutputChannel):
    """The output channel of a follower's turn: collects what the bot says (the inbox makes
    it the passive reply or pushes it). Rasa keeps this channel for the reminders set in
    the turn (the handoff's "客服马上就来"): what arrives after the turn is pushed."""

    def __init__(self, push: Callable[[str, list[str]], Awaitable[int]]) -> None:
        super().__init__()
        self._push = push
        self.closed = False

    @classmethod
    def name(cls) -> str:
        return "wechat"  # responses with `channel: wechat` are chosen for WeChat

    async def _persist_message(self, message: dict[str, Any]) -> None:
        if not self.closed:
            await super()._persist_message(message)
            return
        text = messages.as_text(message)
        if text:
            await self._push(message["recipient_id"], [text])


class WeChatOutput(OutputChannel):
    """Each bot message becomes one customer-service text message."""

    def __init__(self, push: Callable[[str, list[str]], Awaitable[int]]) -> None:
        self._push = push

    @classmethod
    def name(cls) -> str:
        return "wechat"

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        text = messages.as_text(message)
        if text:
            await self._push(recipient_id, [text])

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self._push(recipient_id, [text])


def _args(request: Request) -> dict[str, str]:
    return {name: request.args.get(name) or "" for name in request.args}


def _refuse(request: Request, refusal: Refused) -> HTTPResponse:
    log.warning("WeChat request refused (HTTP %d): %s [from %s]", refusal.status, refusal.reason, request.ip)
    return response.text("forbidden" if refusal.status == 403 else "bad request", status=refusal.status)


def _off(request: Request) -> HTTPResponse:
    log.warning("WeChat request while the channel is off (WECHAT_TOKEN empty) [from %s]", request.ip)
    return response.text("wechat channel not configured", status=503)


def _log_state(config: WeChatConfig) -> None:
    if not config.enabled:
        log.info("WeChat channel off: WECHAT_TOKEN is empty (docs/wechat.md)")
        return
    log.info(
        "WeChat channel on: encrypted messages %s, pushing %s, dedup in %s",
        "yes" if config.safe_mode else "no (WECHAT_ENCODING_AES_KEY empty)",
        "yes" if config.can_push else "no (WECHAT_APP_ID/WECHAT_APP_SECRET empty): slow answers are lost",
        "Redis (the database while it does not answer)" if config.redis_url else "the database",
    )
    if not load_settings().customer_token_secret:
        log.warning("CUSTOMER_TOKEN_SECRET is empty: bound followers are still asked for the identity check")
