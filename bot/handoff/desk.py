"""What an agent does in the console that must also reach the customer: a reply, the
hand-back to the bot, the resolution. The database changes first; then the Rasa server is
asked, through its HTTP API (trigger_intent), to run the matching action, so the words go
into the conversation's tracker and out on the customer's own channel (socket.io, the
callback channel, WeChat). Nothing an agent writes bypasses the tracker."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from urllib.parse import quote

import requests
from sqlalchemy.orm import sessionmaker

from bot.config import load_settings
from bot.handoff import service
from bot.handoff.errors import NotLive, RasaUnavailable
from bot.handoff.service import Handoff, HandoffMessage
from bot.tickets.records import Ticket
from bot.tickets.service import add_note

log = logging.getLogger(__name__)


def reply(
    sessions: sessionmaker,
    number: str,
    agent: str,
    text: str,
    now: datetime,
    *,
    override: bool = False,
) -> HandoffMessage:
    """Send an agent's reply; the returned message has `.error` set when the customer's
    channel could not be reached (it stays undelivered and is sent with the next reply)."""
    message = service.add_agent_message(sessions, number, agent, text, now, override=override)
    handoff = service.handoff_for_ticket(sessions, number)
    try:
        trigger(handoff.conversation_id, "EXTERNAL_agent_reply")
    except RasaUnavailable as error:
        service.message_failed(sessions, message.id, str(error))
        return replace(message, error=str(error))
    sent = next(m for m in service.messages(sessions, number, message.id - 1) if m.id == message.id)
    if sent.delivered_at is None:
        # Rasa answers 200 even when its action call failed (the action server is down)
        error = "对话服务未能送达，请稍后重新发送"
        service.message_failed(sessions, message.id, error)
        return replace(sent, error=error)
    return sent


def hand_back(sessions: sessionmaker, number: str, agent: str, now: datetime) -> Handoff:
    """Give the conversation back to the bot, which resumes with what it knew."""
    handoff = service.end(sessions, number, agent, now, "handed_back")
    if handoff is None:
        raise NotLive(f"ticket {number} has no live conversation to hand back")
    trigger(handoff.conversation_id, "EXTERNAL_hand_back")
    return handoff


def resolve(sessions: sessionmaker, number: str, agent: str, resolution: str, now: datetime) -> Ticket:
    """Resolve the ticket; a customer still in the live conversation reads the resolution
    and is asked for a score. Raises RasaUnavailable (after resolving) when that failed."""
    live = service.handoff_for_ticket(sessions, number)
    ticket = service.resolve(sessions, number, agent, resolution, now)
    if live is not None and live.is_live:
        try:
            trigger(live.conversation_id, "EXTERNAL_handoff_resolved")
        except RasaUnavailable:
            add_note(
                sessions, number, f"agent:{agent}", "办结结果未能实时发给客户（对话通道不可用），请回访时告知", now
            )
            raise
    return ticket


def trigger(conversation_id: str, intent: str) -> None:
    """Ask the Rasa server to run `intent`'s action in the conversation and send what it
    says on the conversation's latest channel."""
    settings = load_settings()
    url = f"{settings.rasa_url}/conversations/{quote(conversation_id, safe='')}/trigger_intent"
    params = {"output_channel": "latest"}
    if settings.rasa_token:
        params["token"] = settings.rasa_token
    try:
        response = requests.post(url, params=params, json={"name": intent}, timeout=settings.rasa_timeout_seconds)
    except requests.RequestException as error:
        log.warning("Rasa server unreachable for %s: %s", intent, type(error).__name__)
        raise RasaUnavailable("对话服务暂时连不上") from error
    if response.status_code != 200:
        log.warning("Rasa server refused %s: HTTP %s %s", intent, response.status_code, response.text[:200])
        raise RasaUnavailable(f"对话服务拒绝了请求（HTTP {response.status_code}）")
