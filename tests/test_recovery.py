"""Conversations cut off by a dead action server go to a person (bot/cluster/recovery.py), on
real SQLite and PostgreSQL databases of each test's own: the analytics consumer's
bookkeeping records the apology nginx said once, however often it is delivered; the
recovery worker waits while the action servers are down and hands each conversation over
once when they answer, with two workers, after a worker stopped midway, and after a
failed attempt. A real HTTP server on loopback stands in for the Rasa API and the actions
door: its trigger_intent does to the database what the handoff rules do."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo

import pytest
from rasa.shared.core.events import BotUttered
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from bot.__main__ import main
from bot.analytics import bookkeeping
from bot.analytics.models import InterruptionRow
from bot.cluster.recovery import CLAIM_SECONDS, RETRY_SECONDS, RasaApi, Recovery, Report, claim, pending
from bot.config import load_settings
from bot.db import session_factory
from bot.handoff import service
from bot.replies import catalogue
from bot.tickets.service import conversation_tickets, file_ticket, ticket_events
from tests.e2e.servers import free_port, running
from tests.ticket_drafts import NOW, draft

LOCAL = ZoneInfo(load_settings().timezone)
APOLOGY = catalogue()["actions_down"][0]
TOKEN = "recovery-token"


@dataclass
class Clock:
    at: datetime = NOW

    def __call__(self) -> datetime:
        return self.at


@dataclass
class RasaStandIn:
    """The Rasa API and the actions door in one real server on loopback. /health answers as
    the door does (502 while no action server serves). trigger_intent answers as the turn
    `turn` would: hand_over files the handoff ticket and queues the conversation in the
    database, as the handoff rules' actions do; apologise is nginx's apology again; ask_phone
    leaves the ticket form asking for a callback phone; refuse is an HTTP 500."""

    sessions: sessionmaker
    clock: Clock
    actions_up: bool = False
    turn: str = "hand_over"
    calls: list[tuple[str, dict, dict]] = field(default_factory=list)
    url: str = ""  # while serving

    @contextmanager
    def serving(self) -> Iterator[str]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self._answer(200 if stand_in.actions_up and self.path == "/health" else 502, {})

            def do_POST(self) -> None:  # noqa: N802
                target = urlsplit(self.path)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                conversation = unquote(target.path.removeprefix("/conversations/").removesuffix("/trigger_intent"))
                stand_in.calls.append((conversation, parse_qs(target.query), body))
                if stand_in.turn == "refuse":
                    return self._answer(500, {"error": "boom"})
                self._answer(200, {"tracker": stand_in.run_turn(conversation)})

            def _answer(self, status: int, value: dict) -> None:
                answer = json.dumps(value).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:
                pass

        with running(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as url:
            yield url

    def run_turn(self, conversation: str) -> dict:
        events: list[dict] = [{"event": "user", "text": "EXTERNAL: request_human", "metadata": {"is_external": True}}]
        slots: dict = {"requested_slot": None}
        loop: dict = {}
        if self.turn == "hand_over":
            filed = draft(request_type="enquiry", subject="handoff", conversation_id=conversation,
                          escalation="request_human")  # fmt: skip
            number = file_ticket(self.sessions, filed, self.clock()).ticket.number
            service.start(self.sessions, number, conversation, "rest", "request_human", self.clock())
            events.append({"event": "bot", "text": f"已为您转接人工客服，工单号 {number}。"})
            slots.update(filed_ticket=number, handoff_ticket=number)
        elif self.turn == "apologise":
            events.append({"event": "bot", "text": APOLOGY, "metadata": {"interruption": "actions_down"}})
        elif self.turn == "ask_phone":
            events.append({"event": "bot", "text": "请留一个方便联系您的手机号。"})
            slots["requested_slot"] = "callback_phone"
            loop = {"name": "ticket_form"}
        return {"sender_id": conversation, "events": events, "slots": slots, "active_loop": loop}


@pytest.fixture(autouse=True)
def _around_the_clock(monkeypatch):
    monkeypatch.delenv("HANDOFF_HOURS", raising=False)


@pytest.fixture
def sessions(empty_database_url: str) -> sessionmaker:
    return session_factory(empty_database_url)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def rasa(sessions, clock) -> Iterator[RasaStandIn]:
    stand_in = RasaStandIn(sessions, clock)
    with stand_in.serving() as url:
        stand_in.url = url
        yield stand_in


def worker(sessions: sessionmaker, rasa: RasaStandIn, clock: Clock) -> Recovery:
    return Recovery(sessions, RasaApi(rasa.url, TOKEN, timeout=10), f"{rasa.url}/health", clock)


def apology(conversation: str, at: datetime, text: str = APOLOGY) -> bytes:
    """nginx's answer for the action servers, as Rasa's event broker publishes it."""
    event = BotUttered(text, metadata={"interruption": "actions_down"}, timestamp=at.replace(tzinfo=LOCAL).timestamp())
    return json.dumps({"sender_id": conversation, **event.as_dict()}, ensure_ascii=False).encode()


def cut_off(sessions: sessionmaker, at: datetime = NOW) -> str:
    """A conversation the bot apologised in at `at`, recorded as the consumer records it."""
    conversation = f"cut-{uuid.uuid4().hex[:12]}"
    assert bookkeeping.record(sessions, bookkeeping.parse(apology(conversation, at)))
    return conversation


def interruptions(sessions: sessionmaker, conversation: str) -> list[tuple]:
    with sessions() as session:
        rows = session.scalars(select(InterruptionRow).where(InterruptionRow.conversation_id == conversation))
        return [(row.happened_at, row.kind, row.recovered_at, row.ticket_number) for row in rows]


def handoff_tickets(sessions: sessionmaker, conversation: str) -> list[str]:
    return [t.number for t in conversation_tickets(sessions, conversation, open_only=False) if t.subject == "handoff"]


# --- the bookkeeping --------------------------------------------------------------------------


def test_an_apology_is_recorded_once_however_often_it_is_delivered(sessions):
    conversation = f"cut-{uuid.uuid4().hex[:12]}"
    body = apology(conversation, NOW)
    assert bookkeeping.record(sessions, bookkeeping.parse(body))
    assert not bookkeeping.record(sessions, bookkeeping.parse(body))  # RabbitMQ delivered it again
    # the same moment said twice in one turn (the slot-filling action and the next one both failed)
    assert bookkeeping.record(sessions, bookkeeping.parse(apology(conversation, NOW, APOLOGY + " ")))
    assert interruptions(sessions, conversation) == [(NOW, "actions_down", None, None)]
    later = NOW + timedelta(minutes=1)
    assert bookkeeping.record(sessions, bookkeeping.parse(apology(conversation, later)))
    assert [row[0] for row in interruptions(sessions, conversation)] == [NOW, later]


def test_other_bot_messages_are_no_interruption(sessions):
    conversation = f"fine-{uuid.uuid4().hex[:12]}"
    for metadata in ({}, {"interruption": "something_else"}, {"interruption": ["actions_down"]}):
        event = BotUttered("您好", metadata=metadata, timestamp=NOW.replace(tzinfo=LOCAL).timestamp())
        body = json.dumps({"sender_id": conversation, **event.as_dict()}).encode()
        assert bookkeeping.record(sessions, bookkeeping.parse(body))
    assert interruptions(sessions, conversation) == []


# --- the worker ---------------------------------------------------------------------------------


def test_nothing_is_done_while_the_action_servers_are_down(sessions, rasa, clock):
    conversation = cut_off(sessions)
    clock.at = NOW + timedelta(seconds=5)
    assert worker(sessions, rasa, clock).round() == Report(waiting=1)
    assert rasa.calls == []
    assert interruptions(sessions, conversation) == [(NOW, "actions_down", None, None)]
    assert [item.conversation_id for item in pending(sessions, clock())] == [conversation]  # nothing claimed


def test_the_conversation_is_handed_over_once_when_they_answer_again(sessions, rasa, clock):
    conversation = cut_off(sessions)
    clock.at = NOW + timedelta(seconds=5)
    recovery = worker(sessions, rasa, clock)
    assert recovery.round() == Report(waiting=1)
    rasa.actions_up = True
    clock.at = NOW + timedelta(seconds=8)
    assert recovery.round() == Report(handed_over=1)
    [(called, query, body)] = rasa.calls
    assert (called, body) == (conversation, {"name": "request_human"})
    assert query == {"output_channel": ["latest"], "token": [TOKEN]}
    [number] = handoff_tickets(sessions, conversation)
    assert interruptions(sessions, conversation) == [(NOW, "actions_down", clock.at, number)]
    [note] = [e for e in ticket_events(sessions, number) if e.kind == "note"]
    assert note.actor == "system" and "系统维护" in note.detail["text"] and "今天10:00" in note.detail["text"]

    # later rounds, the same event delivered again, a restarted worker: nothing more
    assert not bookkeeping.record(sessions, bookkeeping.parse(apology(conversation, NOW)))
    clock.at = NOW + timedelta(hours=1)
    assert recovery.round() == Report()
    assert worker(sessions, rasa, clock).round() == Report()
    assert len(rasa.calls) == 1 and handoff_tickets(sessions, conversation) == [number]


def test_a_conversation_an_agent_has_already_is_not_handed_over_again(sessions, rasa, clock):
    """Cut off again while its handoff is live, or the customer asked for a person meanwhile:
    recorded on that ticket, and the customer is not told twice."""
    rasa.actions_up = True
    conversation = cut_off(sessions)
    clock.at = NOW + timedelta(seconds=5)
    assert worker(sessions, rasa, clock).round() == Report(handed_over=1)
    [number] = handoff_tickets(sessions, conversation)
    cut_again = NOW + timedelta(minutes=3)
    assert bookkeeping.record(sessions, bookkeeping.parse(apology(conversation, cut_again)))
    clock.at = cut_again + timedelta(seconds=5)
    assert worker(sessions, rasa, clock).round() == Report(handed_over=1)
    assert len(rasa.calls) == 1
    assert [row[3] for row in interruptions(sessions, conversation)] == [number, number]

    asked_meanwhile = cut_off(sessions, NOW + timedelta(minutes=10))
    filed = draft(request_type="enquiry", subject="handoff", conversation_id=asked_meanwhile)
    clock.at = NOW + timedelta(minutes=11)
    own = file_ticket(sessions, filed, clock()).ticket.number
    service.start(sessions, own, asked_meanwhile, "rest", "request_human", clock())
    assert worker(sessions, rasa, clock).round() == Report(handed_over=1)
    assert len(rasa.calls) == 1
    assert interruptions(sessions, asked_meanwhile)[0][3] == own


def test_two_workers_hand_a_conversation_over_once(sessions, rasa, clock):
    rasa.actions_up = True
    conversations = {cut_off(sessions, NOW + timedelta(seconds=n)) for n in range(4)}
    clock.at = NOW + timedelta(minutes=1)
    workers = [worker(sessions, rasa, clock) for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda w: w.round(), workers))
    assert sum(r.handed_over for r in reports) == 4 and sum(r.failed for r in reports) == 0
    assert sorted(called for called, _, _ in rasa.calls) == sorted(conversations)
    for conversation in conversations:
        [number] = handoff_tickets(sessions, conversation)
        assert interruptions(sessions, conversation)[0][3] == number


def test_a_worker_that_stopped_midway_is_taken_over_without_filing_twice(sessions, rasa, clock):
    rasa.actions_up = True
    conversation = cut_off(sessions)
    clock.at = NOW + timedelta(seconds=5)
    [item] = pending(sessions, clock())
    assert claim(sessions, item, clock())
    rasa.run_turn(conversation)  # it handed over, then stopped before recording so
    [number] = handoff_tickets(sessions, conversation)
    clock.at = NOW + timedelta(seconds=60)
    assert worker(sessions, rasa, clock).round() == Report()  # its claim holds
    clock.at = NOW + timedelta(seconds=5 + CLAIM_SECONDS)
    assert worker(sessions, rasa, clock).round() == Report(handed_over=1)
    assert rasa.calls == []
    assert interruptions(sessions, conversation)[0][3] == number
    assert handoff_tickets(sessions, conversation) == [number]


@pytest.mark.parametrize("turn", ["apologise", "refuse"])
def test_a_failed_hand_over_is_tried_again_later_not_at_once(sessions, rasa, clock, turn):
    rasa.actions_up, rasa.turn = True, turn
    conversation = cut_off(sessions)
    clock.at = NOW + timedelta(seconds=5)
    recovery = worker(sessions, rasa, clock)
    assert recovery.round() == Report(failed=1)
    clock.at += timedelta(seconds=RETRY_SECONDS - 1)
    assert recovery.round() == Report()  # the customer is not told again every few seconds
    assert len(rasa.calls) == 1 and interruptions(sessions, conversation)[0][2] is None
    rasa.turn = "hand_over"
    clock.at += timedelta(seconds=1)
    assert recovery.round() == Report(handed_over=1)
    [number] = handoff_tickets(sessions, conversation)
    assert interruptions(sessions, conversation)[0][3] == number


def test_an_unreachable_rasa_server_is_tried_again_later(sessions, rasa, clock):
    rasa.actions_up = True
    conversation = cut_off(sessions)
    clock.at = NOW + timedelta(seconds=5)
    absent = Recovery(sessions, RasaApi(f"http://127.0.0.1:{free_port()}", TOKEN), f"{rasa.url}/health", clock)
    assert absent.round() == Report(failed=1)
    assert interruptions(sessions, conversation)[0][2] is None
    clock.at += timedelta(seconds=RETRY_SECONDS)
    assert worker(sessions, rasa, clock).round() == Report(handed_over=1)


def test_outside_the_online_hours_the_bot_asks_for_a_phone_once(sessions, rasa, clock):
    """The handoff rules ask for a callback phone when none is known: the ticket is filed with
    the customer's answer, and the worker does not ask again."""
    rasa.actions_up, rasa.turn = True, "ask_phone"
    conversation = cut_off(sessions)
    clock.at = NOW + timedelta(seconds=5)
    recovery = worker(sessions, rasa, clock)
    assert recovery.round() == Report(asked=1)
    assert interruptions(sessions, conversation) == [(NOW, "actions_down", clock.at, None)]
    clock.at += timedelta(hours=1)
    assert recovery.round() == Report() and len(rasa.calls) == 1


def test_the_command_runs_one_round(sessions, rasa, clock, empty_database_url, monkeypatch, capsys):
    conversation = cut_off(sessions, datetime.now(LOCAL).replace(tzinfo=None, microsecond=0))
    monkeypatch.setenv("RASA_URL", rasa.url)
    monkeypatch.setenv("RASA_TOKEN", TOKEN)
    monkeypatch.setenv("ACTIONS_URL", rasa.url + "/")
    assert main(["recovery", "run", "--once", "--database-url", empty_database_url]) == 0
    out = capsys.readouterr().out
    assert out.startswith("0 handed over") and "1 waiting" in out
    rasa.actions_up = True
    assert main(["recovery", "run", "--once", "--database-url", empty_database_url]) == 0
    assert capsys.readouterr().out.startswith("1 handed over")
    assert [called for called, _, _ in rasa.calls] == [conversation]
