"""The recovery worker: a conversation the bot could not serve goes to a person.

When no action server answers, nginx's actions door answers for them: the customer hears
that the conversation has been passed to a person (`actions_down` in bot/replies.yml), and
the analytics consumer records the interruption from Rasa's event stream
(bot/analytics/bookkeeping.py). This worker keeps that promise. Every few seconds, while
interruptions wait and the action servers answer again (`ACTIONS_URL`, the door the Rasa
servers call them through), it asks the Rasa server (`RASA_URL`, `RASA_TOKEN`) to run the
intent `request_human` in each such conversation: the rules a customer's 转人工 runs, so
the handoff ticket is filed, the conversation joins the console's queue (outside the
online hours: a callback), and the customer is told on their own channel. The ticket's
history says why it came. `python -m bot recovery run [--once]`.

Once per conversation, however many workers run: a worker claims the conversation on its
earliest open interruption (an UPDATE that only a lapsed claim lets through); a
conversation with a live handoff, or one made since it was cut off (the customer asked
again, or a worker stopped after handing it over), is recorded with that ticket and not
handed over again; and filing finds the conversation's open handoff ticket. A hand-over
that fails (Rasa unreachable, the action servers failing again) is tried again after
RETRY_SECONDS, so the customer is not told again every few seconds.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import requests
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot import clock
from bot.analytics.models import InterruptionRow
from bot.cluster.launcher import answers
from bot.handoff.errors import RasaUnavailable
from bot.handoff.models import HandoffRow
from bot.handoff.service import LIVE
from bot.masking import mask_openid
from bot.tickets.errors import TicketStoreUnavailable
from bot.tickets.models import TicketRow
from bot.tickets.store import read, row_by_number, write
from bot.tickets.workflow import record_event
from bot.wording import moment

log = logging.getLogger(__name__)

HANDOFF_INTENT = "request_human"  # data/rules.yml: action_open_ticket, ticket_form, the handoff
TICKET_FORM = "ticket_form"
TRIGGER_SECONDS = 120.0  # a handoff turn runs several actions, each allowed 30 s by nginx
CLAIM_SECONDS = 180  # longer than a hand-over can take
RETRY_SECONDS = 60
INTERVAL_SECONDS = 3.0
# on the handoff ticket: its escalation says the customer asked, but the bot promised it
NOTE = (
    "{at}系统维护（动作服务器无响应），机器人未能办理客户的请求，已向客户致歉并承诺转人工。"
    "中断期间客户说的话请看对话记录。"
)


def actions_url(environ: Mapping[str, str] = os.environ) -> str:
    """The action servers as the Rasa servers reach them: ACTIONS_URL, else run.sh's one."""
    return (environ.get("ACTIONS_URL") or f"http://127.0.0.1:{environ.get('ACTIONS_PORT') or 5055}").rstrip("/")


@dataclass(frozen=True)
class Pending:
    """A conversation cut off and not handed over yet."""

    conversation_id: str
    first_id: int  # its earliest open interruption, which holds the claim
    since: datetime  # when it was cut off


@dataclass
class Report:
    """What one round did, in conversations."""

    handed_over: int = 0  # to a person now, or found with a handoff already
    asked: int = 0  # the bot asks what the handoff still lacks (a phone, outside the online hours)
    failed: int = 0  # tried again after RETRY_SECONDS
    waiting: int = 0  # for the action servers to answer


@dataclass(frozen=True)
class RasaApi:
    """The Rasa HTTP API (the staff door, with its token)."""

    url: str
    token: str = ""
    timeout: float = TRIGGER_SECONDS

    def trigger(self, conversation_id: str, intent: str) -> dict[str, Any]:
        """Run `intent` in the conversation, saying the replies on its latest channel; the
        tracker afterwards. RasaUnavailable when the server does not take it."""
        url = f"{self.url.rstrip('/')}/conversations/{quote(conversation_id, safe='')}/trigger_intent"
        params = {"output_channel": "latest", **({"token": self.token} if self.token else {})}
        try:
            response = requests.post(url, params=params, json={"name": intent}, timeout=self.timeout)
        except requests.RequestException as error:
            raise RasaUnavailable(f"Rasa server unreachable ({type(error).__name__})") from error
        if response.status_code != 200:
            raise RasaUnavailable(f"Rasa server refused {intent}: HTTP {response.status_code}")
        try:
            return response.json().get("tracker") or {}
        except ValueError as error:
            raise RasaUnavailable("Rasa server answered something else than its tracker") from error


@dataclass
class Recovery:
    """Hands the cut-off conversations of one database to a person through one Rasa API."""

    sessions: sessionmaker
    rasa: RasaApi
    actions_health: str  # answers 200 while an action server serves
    now: Callable[[], datetime] = clock.now

    def round(self) -> Report:
        """Hand over every conversation waiting whose claim has lapsed, if the action servers answer."""
        waiting = pending(self.sessions, self.now())
        if waiting and not answers(self.actions_health):
            return Report(waiting=len(waiting))
        outcomes = Counter(self._hand_over(item) for item in waiting if claim(self.sessions, item, self.now()))
        return Report(**outcomes)  # a conversation another worker claimed meanwhile is theirs

    def run(self, interval: float = INTERVAL_SECONDS) -> None:
        """Rounds every `interval` seconds until stopped; a database that does not answer is waited for."""
        log.info("recovery: watching for cut-off conversations (action servers: %s)", self.actions_health)
        told_waiting = False
        while True:
            try:
                report = self.round()
                if report.waiting and not told_waiting:
                    log.warning("recovery: %d conversations wait for the action servers", report.waiting)
                told_waiting = bool(report.waiting)
            except TicketStoreUnavailable as error:
                log.warning("recovery: %s", error)
            time.sleep(interval)

    def _hand_over(self, item: Pending) -> str:
        who = mask_openid(item.conversation_id)  # a WeChat conversation's id is the follower's openid
        number = read(self.sessions, lambda session: _handoff_ticket(session, item))
        if number is not None:
            self._record(item, number)
            log.info("recovery: %s has handoff %s already", who, number)
            return "handed_over"
        try:
            tracker = self.rasa.trigger(item.conversation_id, HANDOFF_INTENT)
        except RasaUnavailable as error:
            log.warning("recovery: could not hand over %s: %s; again in %d s", who, error, RETRY_SECONDS)
            return self._retry_later(item)
        number = read(self.sessions, lambda session: _handoff_ticket(session, item))
        if number is not None:
            self._record(item, number)
            log.info("recovery: %s handed over, ticket %s", who, number)
            return "handed_over"
        if not _interrupted(tracker) and _asking(tracker):
            self._record(item, None)
            log.info("recovery: %s handed over; the bot asks for a callback phone before filing", who)
            return "asked"
        reason = "the action servers failed again" if _interrupted(tracker) else "no handoff came of it"
        log.warning("recovery: could not hand over %s: %s; again in %d s", who, reason, RETRY_SECONDS)
        return self._retry_later(item)

    def _record(self, item: Pending, number: str | None) -> None:
        """The conversation's open interruptions are recovered, once; the ticket says why it came."""
        now = self.now()

        def work(session: Session) -> None:
            done = session.execute(
                update(InterruptionRow)
                .where(
                    InterruptionRow.conversation_id == item.conversation_id,
                    InterruptionRow.recovered_at.is_(None),
                    InterruptionRow.happened_at <= now,
                )
                .values(recovered_at=now, ticket_number=number, claimed_until=None),
                execution_options={"synchronize_session": False},
            )
            if done.rowcount and number is not None:
                note = NOTE.format(at=moment(item.since, now))
                record_event(session, row_by_number(session, number), "system", now, "note", {"text": note})

        write(self.sessions, work)

    def _retry_later(self, item: Pending) -> str:
        until = self.now() + timedelta(seconds=RETRY_SECONDS)
        write(
            self.sessions,
            lambda session: session.execute(
                update(InterruptionRow).where(InterruptionRow.id == item.first_id).values(claimed_until=until)
            ),
        )
        return "failed"


def pending(sessions: sessionmaker, now: datetime) -> list[Pending]:
    """Conversations with open interruptions whose claim has lapsed, the longest waiting first."""
    first = (
        select(
            InterruptionRow.conversation_id,
            func.min(InterruptionRow.id).label("first_id"),
            func.min(InterruptionRow.happened_at).label("since"),
        )
        .where(InterruptionRow.recovered_at.is_(None))
        .group_by(InterruptionRow.conversation_id)
        .subquery()
    )
    query = (
        select(first.c.conversation_id, first.c.first_id, first.c.since)
        .join(InterruptionRow, InterruptionRow.id == first.c.first_id)
        .where(or_(InterruptionRow.claimed_until.is_(None), InterruptionRow.claimed_until <= now))
        .order_by(first.c.since, first.c.first_id)
    )
    return read(sessions, lambda session: [Pending(*row) for row in session.execute(query)])


def claim(sessions: sessionmaker, item: Pending, now: datetime) -> bool:
    """Hold the conversation for CLAIM_SECONDS: True for one worker only (PostgreSQL makes a
    second UPDATE wait for the first and then finds the claim taken)."""
    until = now + timedelta(seconds=CLAIM_SECONDS)
    statement = (
        update(InterruptionRow)
        .where(
            InterruptionRow.id == item.first_id,
            InterruptionRow.recovered_at.is_(None),
            or_(InterruptionRow.claimed_until.is_(None), InterruptionRow.claimed_until <= now),
        )
        .values(claimed_until=until)
    )
    return write(sessions, lambda session: session.execute(statement).rowcount == 1)


def _handoff_ticket(session: Session, item: Pending) -> str | None:
    """The ticket of the conversation's handoff that answers the cut-off: one still live (an
    agent has it or will), or one made since."""
    return session.scalar(
        select(TicketRow.number)
        .join(HandoffRow, HandoffRow.ticket_id == TicketRow.id)
        .where(
            HandoffRow.conversation_id == item.conversation_id,
            or_(HandoffRow.status.in_(LIVE), HandoffRow.created_at >= item.since),
        )
        .order_by(HandoffRow.id.desc())
        .limit(1)
    )


def _turn(tracker: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The events of the turn the trigger ran: after its (external) user event."""
    events = tracker.get("events") or []
    last_user = max((i for i, event in enumerate(events) if event.get("event") == "user"), default=-1)
    return events[last_user + 1 :]


def _interrupted(tracker: Mapping[str, Any]) -> bool:
    """The bot apologised again in that turn: an action server failed once more."""
    return any(
        event.get("event") == "bot" and (event.get("metadata") or {}).get("interruption") for event in _turn(tracker)
    )


def _asking(tracker: Mapping[str, Any]) -> bool:
    """The ticket form waits for the customer (the handoff's callback phone)."""
    loop = tracker.get("active_loop") or {}
    return loop.get("name") == TICKET_FORM and bool((tracker.get("slots") or {}).get("requested_slot"))
