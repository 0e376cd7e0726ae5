"""Pushing words to a follower outside a passive reply: the bot's slow answers and the
agents' replies. When WeChat refuses because the follower has not written for 48 hours
(45015), the words cannot reach them in WeChat at all: that is logged and noted on the
customer's open ticket, so the agent calls instead."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.orm import sessionmaker

from bot import clock
from bot.masking import mask_openid
from bot.tickets.errors import TicketError
from bot.tickets.service import add_note, conversation_tickets, short
from bot.wechat.api import OutsideWindow, WeChatApi, WeChatApiError

log = logging.getLogger(__name__)
ACTOR = "system"  # the ticket history's actor for what no person did


class Delivery:
    def __init__(self, api: WeChatApi | None, sessions: Callable[[], sessionmaker]) -> None:
        self._api = api
        self._sessions = sessions

    @property
    def possible(self) -> bool:
        return self._api is not None

    def push(self, openid: str, texts: list[str]) -> int:
        """Send each text in order; how many went out. Blocking: run it in a thread."""
        if self._api is None:
            log.warning("cannot push %d message(s) to %s: WECHAT_APP_ID/WECHAT_APP_SECRET not set",
                        len(texts), mask_openid(openid))  # fmt: skip
            return 0
        for sent, text in enumerate(texts):
            try:
                self._api.send_text(openid, text)
            except OutsideWindow:
                log.warning("WeChat follower %s is outside the 48-hour window (45015): %d message(s) not delivered",
                            mask_openid(openid), len(texts) - sent)  # fmt: skip
                self._note_on_ticket(openid, texts[sent:])
                return sent
            except WeChatApiError as error:
                log.error("push to WeChat follower %s failed: %s", mask_openid(openid), error)
                return sent
        return len(texts)

    def _note_on_ticket(self, openid: str, undelivered: list[str]) -> None:
        """The customer's latest open ticket (this conversation's; the sender id is the openid)."""
        try:
            sessions = self._sessions()
            tickets = conversation_tickets(sessions, openid)
            if not tickets:
                log.info("no open ticket to note the undelivered WeChat message(s) on")
                return
            ticket = tickets[0]  # newest first
            note = (
                "微信消息未能送达：客户48小时内没有在公众号发过消息，微信不允许再推送（45015）。"
                f"请电话联系客户。未送达的内容：{short(' / '.join(undelivered), 200)}"
            )
            add_note(sessions, ticket.number, ACTOR, note, clock.now())
        except TicketError as error:
            log.warning("could not note the undelivered WeChat message(s) on a ticket: %s", type(error).__name__)
