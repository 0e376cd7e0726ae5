"""The live handoff (转人工) on real SQLite and PostgreSQL: the queue and its order, what
both sides say, claims (two agents at once included), hand-back, resolution, return
visits (回访), the ticket corrections agents make, the customer's rating, and the console's
calls to a real HTTP server standing in for Rasa."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import event, func, select

from bot.db import engine_for, session_factory
from bot.handoff import desk, service
from bot.handoff.errors import AlreadyClaimed, NotLive, NotYours, RasaUnavailable
from bot.handoff.models import ConversationRow, HandoffRow
from bot.handoff.satisfaction import parse_rating
from bot.tickets.errors import IllegalTransition, InvalidDraft
from bot.tickets.service import (
    change_status,
    file_ticket,
    find_ticket,
    record_satisfaction,
    ticket_events,
    update_ticket,
)
from bot.tickets.workflow import RETURN_VISIT_DAYS
from tests.e2e.servers import free_port, running
from tests.ticket_drafts import NOW, draft

URGENT = {"request_type": "fault_repair", "subject": "hazard", "category": "outage"}
UPSET = {"frustration": 2}  # high priority


@pytest.fixture(autouse=True)
def _settings(monkeypatch):
    """Around the clock, and no Rasa server unless a test starts one."""
    monkeypatch.delenv("HANDOFF_HOURS", raising=False)
    monkeypatch.setenv("RASA_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("RASA_TOKEN", "")
    monkeypatch.setenv("RASA_TIMEOUT_SECONDS", "5")


@pytest.fixture
def sessions(database_url: str):
    return session_factory(database_url)


@pytest.fixture
def fresh(empty_database_url: str):
    """A database of the test's own: queue positions and wait estimates count every handoff."""
    return session_factory(empty_database_url)


def hand_over(sessions, now: datetime = NOW, **changes) -> service.Start:
    """A ticket filed in a conversation of its own, handed over to the agents at `now`."""
    filed = draft(conversation_id=f"handoff-{uuid.uuid4().hex}", **changes)
    number = file_ticket(sessions, filed, now).ticket.number
    return service.start(sessions, number, filed.conversation_id, "rest", "request_human", now)


def claimed(sessions, now: datetime = NOW, agent: str = "wang", **changes) -> service.Start:
    start = hand_over(sessions, now, **changes)
    service.claim(sessions, start.ticket.number, agent, now + timedelta(minutes=1))
    return start


def kinds(sessions, number: str) -> list[str]:
    return [e.kind for e in ticket_events(sessions, number)]


def numbers(tickets) -> list[str]:
    return [ticket.number for ticket in tickets]


# --- start: the queue, asking again, the callback outside service hours ----------------------


def test_handoff_in_service_hours_waits_in_the_queue(fresh):
    first = hand_over(fresh, NOW)
    second = hand_over(fresh, NOW + timedelta(minutes=1))
    assert (first.handoff.status, first.position) == ("waiting", 1)
    assert first.handoff.is_live and first.handoff.channel == "rest" and first.handoff.reason == "request_human"
    assert (second.handoff.status, second.position) == ("waiting", 2)
    assert first.wait_minutes is None  # nobody has been picked up yet to estimate from
    assert service.live_handoff(fresh, first.handoff.conversation_id) == first.handoff
    assert "handoff_queued" in kinds(fresh, first.ticket.number)


def test_an_urgent_ticket_goes_ahead_of_normal_ones(fresh):
    normal = hand_over(fresh, NOW)
    high = hand_over(fresh, NOW + timedelta(minutes=1), **UPSET)
    urgent = hand_over(fresh, NOW + timedelta(minutes=2), **URGENT)
    assert (normal.ticket.priority, high.ticket.priority, urgent.ticket.priority) == ("normal", "high", "urgent")
    assert (high.position, urgent.position) == (1, 1)
    positions = [service.queue_position(fresh, s.handoff.id) for s in (urgent, high, normal)]
    assert positions == [1, 2, 3]


def test_equal_priorities_wait_in_order_of_their_deadline(fresh, monkeypatch):
    """Queue order is priority, then the SLA deadline: not simply who asked first."""
    relaxed = hand_over(fresh, NOW)  # due in a day
    monkeypatch.setenv("TICKET_SLA_NORMAL_MINUTES", "30")
    pressing = hand_over(fresh, NOW + timedelta(minutes=5))  # asked later, due in 30 minutes
    assert pressing.ticket.sla_due_at < relaxed.ticket.sla_due_at
    assert pressing.position == 1
    assert service.queue_position(fresh, relaxed.handoff.id) == 2


def test_asking_again_in_the_conversation_gives_the_same_handoff(sessions):
    first = hand_over(sessions)
    again = service.start(
        sessions, first.ticket.number, first.handoff.conversation_id, "rest", "frustration", NOW + timedelta(minutes=2)
    )
    assert again.handoff == first.handoff
    with sessions() as session:
        rows = session.scalar(
            select(func.count())
            .select_from(HandoffRow)
            .where(HandoffRow.conversation_id == first.handoff.conversation_id)
        )
    assert rows == 1
    assert kinds(sessions, first.ticket.number).count("handoff_queued") == 1


def test_asking_twice_at_the_same_instant_gives_one_handoff(database_url, sessions):
    """Both requests find no live handoff and insert one: the unique live key decides."""
    filed = draft(conversation_id=f"handoff-{uuid.uuid4().hex}")
    number = file_ticket(sessions, filed, NOW).ticket.number
    both_checked = threading.Barrier(2, timeout=20)

    def insert_together(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.startswith("INSERT INTO handoffs "):
            both_checked.wait()

    def ask(_: int) -> service.Start:
        return service.start(sessions, number, filed.conversation_id, "rest", "request_human", NOW)

    engine = engine_for(database_url)
    event.listen(engine, "before_cursor_execute", insert_together)
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            first, second = pool.map(ask, range(2))
    finally:
        event.remove(engine, "before_cursor_execute", insert_together)
    assert first.handoff == second.handoff and first.handoff.status == "waiting"
    assert kinds(sessions, number).count("handoff_queued") == 1


def test_a_second_ticket_asking_for_a_person_gets_the_live_handoff_of_the_first(sessions):
    """One live handoff a conversation: it is reported with the ticket it hangs on."""
    first = hand_over(sessions)
    conversation = first.handoff.conversation_id
    other = file_ticket(sessions, draft(conversation_id=conversation, category="metering"), NOW).ticket.number
    again = service.start(sessions, other, conversation, "rest", "request_human", NOW + timedelta(minutes=1))
    assert again.handoff.id == first.handoff.id
    assert again.handoff.ticket_number == first.ticket.number == again.ticket.number
    assert service.handoff_for_ticket(sessions, other) is None


def test_outside_service_hours_the_handoff_is_a_callback(sessions, monkeypatch):
    monkeypatch.setenv("HANDOFF_HOURS", "08:00-20:00")
    night = hand_over(sessions, datetime(2026, 11, 24, 22, 30))
    assert night.handoff.status == "callback" and not night.handoff.is_live
    assert (night.position, night.wait_minutes) == (None, None)
    assert service.live_handoff(sessions, night.handoff.conversation_id) is None
    assert service.customer_said(sessions, night.handoff.conversation_id, "有人吗", NOW) is None
    assert "handoff_callback" in kinds(sessions, night.ticket.number)
    day = hand_over(sessions, datetime(2026, 11, 25, 9, 0))
    assert day.handoff.status == "waiting"


@pytest.mark.parametrize(
    "hours, at, inside",
    [
        ("", "03:00", True),
        ("08:00-20:00", "07:59", False),
        ("08:00-20:00", "08:00", True),
        ("08:00-20:00", "19:59", True),
        ("08:00-20:00", "20:00", False),
        ("22:00-06:00", "21:59", False),
        ("22:00-06:00", "22:00", True),
        ("22:00-06:00", "23:30", True),
        ("22:00-06:00", "00:00", True),
        ("22:00-06:00", "05:59", True),
        ("22:00-06:00", "06:00", False),
        ("22:00-06:00", "12:00", False),
    ],
)
def test_service_hours(monkeypatch, hours, at, inside):
    monkeypatch.setenv("HANDOFF_HOURS", hours)
    hour, minute = (int(part) for part in at.split(":"))
    assert service.in_service_hours(datetime(2026, 11, 24, hour, minute)) is inside


# --- the wait estimate -----------------------------------------------------------------------


def test_wait_is_estimated_from_recent_pick_ups(fresh):
    def picked_up_after(minutes: int, asked: datetime) -> None:
        start = hand_over(fresh, asked)
        service.claim(fresh, start.ticket.number, "wang", asked + timedelta(minutes=minutes))

    picked_up_after(2, NOW - timedelta(hours=3))
    picked_up_after(4, NOW - timedelta(hours=2))
    assert service.wait_estimate(fresh, 2, NOW) is None  # two pick-ups say too little
    picked_up_after(60, NOW - timedelta(days=8))  # too old to count: it would make the median 5
    assert service.wait_estimate(fresh, 2, NOW) is None
    picked_up_after(6, NOW - timedelta(hours=1))
    assert service.wait_estimate(fresh, 2, NOW) == 8  # median 4 minutes, second in line
    assert service.wait_estimate(fresh, 1, NOW) == 4
    assert hand_over(fresh, NOW).wait_minutes == 4


# --- what the customer and the bot say ---------------------------------------------------


def test_customer_and_bot_lines_are_kept_in_order(sessions):
    start = hand_over(sessions)
    conversation, number = start.handoff.conversation_id, start.ticket.number
    notice = service.bot_said(sessions, conversation, "已为您转接人工客服", NOW)
    first = service.customer_said(sessions, conversation, "有人吗", NOW + timedelta(minutes=1))
    second = service.customer_said(sessions, conversation, "我家停电两天了", NOW + timedelta(minutes=2))
    assert (notice.speaker, first.speaker, first.text, first.author) == ("bot", "customer", "有人吗", None)
    assert service.live_handoff(sessions, conversation).last_customer_at == NOW + timedelta(minutes=2)
    said = service.messages(sessions, number)
    assert [(m.speaker, m.text) for m in said] == [
        ("bot", "已为您转接人工客服"),
        ("customer", "有人吗"),
        ("customer", "我家停电两天了"),
    ]
    assert [m.id for m in service.messages(sessions, number, notice.id)] == [first.id, second.id]
    assert service.messages(sessions, number, second.id) == []


def test_nothing_is_kept_without_a_live_handoff(sessions):
    nobody = f"handoff-{uuid.uuid4().hex}"
    assert service.customer_said(sessions, nobody, "你好", NOW) is None
    assert service.bot_said(sessions, nobody, "请稍候", NOW) is None


# --- claims ------------------------------------------------------------------------------


def test_the_first_agent_to_claim_gets_the_ticket(sessions):
    start = hand_over(sessions)
    number = start.ticket.number
    ticket = service.claim(sessions, number, "wang", NOW + timedelta(minutes=3))
    assert (ticket.status, ticket.assigned_agent) == ("assigned", "wang")
    handoff = service.handoff_for_ticket(sessions, number)
    assert (handoff.status, handoff.claimed_by, handoff.claimed_at) == ("active", "wang", NOW + timedelta(minutes=3))
    with pytest.raises(AlreadyClaimed) as refused:
        service.claim(sessions, number, "li", NOW + timedelta(minutes=4))
    assert (refused.value.number, refused.value.by) == (number, "wang")
    assert service.handoff_for_ticket(sessions, number).claimed_by == "wang"


def test_the_holder_claims_the_customer_again(sessions):
    """Handed back, the customer asks for a person again: the agent who holds the ticket takes it."""
    start = claimed(sessions, agent="wang")
    number, conversation = start.ticket.number, start.handoff.conversation_id
    service.end(sessions, number, "wang", NOW + timedelta(minutes=5), "handed_back")
    again = service.start(sessions, number, conversation, "rest", "request_human", NOW + timedelta(minutes=9))
    assert again.handoff.id != start.handoff.id and again.handoff.status == "waiting"
    assert service.claim(sessions, number, "wang", NOW + timedelta(minutes=10)).assigned_agent == "wang"
    assert service.live_handoff(sessions, conversation).claimed_by == "wang"
    with pytest.raises(AlreadyClaimed):
        service.claim(sessions, number, "li", NOW + timedelta(minutes=11))


def test_two_agents_claiming_at_the_same_instant(database_url, sessions):
    """Both agents have read the ticket as free before either takes it: still one wins."""
    number = hand_over(sessions).ticket.number
    together, both_read = threading.Barrier(2, timeout=20), threading.Barrier(2, timeout=20)

    def take_together(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.startswith("UPDATE tickets SET assigned_agent"):
            both_read.wait()

    def claim_as(agent: str):
        together.wait()
        try:
            return service.claim(sessions, number, agent, NOW + timedelta(minutes=1))
        except AlreadyClaimed as refused:
            return refused

    engine = engine_for(database_url)
    event.listen(engine, "before_cursor_execute", take_together)
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(claim_as, ["wang", "li"]))
    finally:
        event.remove(engine, "before_cursor_execute", take_together)
    won = [r for r in results if not isinstance(r, AlreadyClaimed)]
    lost = [r for r in results if isinstance(r, AlreadyClaimed)]
    assert len(won) == 1 and len(lost) == 1
    winner = won[0].assigned_agent
    assert winner in ("wang", "li") and lost[0].by == winner
    assert find_ticket(sessions, number).assigned_agent == winner
    assert service.handoff_for_ticket(sessions, number).claimed_by == winner
    assert kinds(sessions, number).count("claimed") == 1


# --- the agent's messages ------------------------------------------------------------------


def test_a_customer_asking_again_can_be_taken_by_any_agent(sessions):
    """The ticket's holder handed back and is off shift: the customer's new call for a
    person must not wait for that one agent."""
    start = claimed(sessions, agent="wang")
    number, conversation = start.ticket.number, start.handoff.conversation_id
    service.end(sessions, number, "wang", NOW + timedelta(minutes=2), "handed_back")
    again = service.start(sessions, number, conversation, "rest", "request_human", NOW + timedelta(minutes=3))
    assert again.handoff.status == "waiting"
    ticket = service.claim(sessions, number, "li", NOW + timedelta(minutes=4))
    assert ticket.assigned_agent == "li"
    assert service.handoff_for_ticket(sessions, number).claimed_by == "li"
    with pytest.raises(AlreadyClaimed) as refused:
        service.claim(sessions, number, "zhao", NOW + timedelta(minutes=5))
    assert refused.value.by == "li"


def test_the_ticket_keeps_the_customers_worst_mood_during_the_chat(sessions):
    start = claimed(sessions, frustration=0)
    conversation = start.handoff.conversation_id
    service.customer_said(sessions, conversation, "怎么还没人管！！", NOW + timedelta(minutes=2), 3)
    service.customer_said(sessions, conversation, "好吧", NOW + timedelta(minutes=3), 1)
    assert find_ticket(sessions, start.ticket.number).frustration == 3


def test_a_return_visit_needs_a_resolved_ticket(sessions):
    start = claimed(sessions)
    with pytest.raises(IllegalTransition):
        service.close_return_visit(sessions, start.ticket.number, "wang", NOW, satisfied=False, notes="")
    ticket = find_ticket(sessions, start.ticket.number)
    assert ticket.status == "assigned" and ticket.return_visit_result is None


def test_a_typo_in_the_hours_keeps_agents_online(monkeypatch):
    monkeypatch.setenv("HANDOFF_HOURS", "8点到20点")
    assert service.service_hours() is None and service.in_service_hours(NOW)


def test_only_the_claiming_agent_answers(sessions):
    start = hand_over(sessions)
    number = start.ticket.number
    with pytest.raises(NotYours):
        service.add_agent_message(sessions, number, "wang", "您好", NOW)  # nobody has claimed it yet
    service.claim(sessions, number, "wang", NOW + timedelta(minutes=1))
    with pytest.raises(NotYours):
        service.add_agent_message(sessions, number, "li", "您好", NOW + timedelta(minutes=2))
    assert find_ticket(sessions, number).status == "assigned"
    reply = service.add_agent_message(sessions, number, "wang", "您好，我是客服小王", NOW + timedelta(minutes=2))
    assert (reply.speaker, reply.author, reply.text) == ("agent", "wang", "您好，我是客服小王")
    assert (reply.delivered_at, reply.error) == (None, None)
    assert find_ticket(sessions, number).status == "in_progress"
    supervisor = service.add_agent_message(
        sessions, number, "zhao", "我是值班长", NOW + timedelta(minutes=3), override=True
    )
    assert supervisor.author == "zhao"
    moves = [e.detail for e in ticket_events(sessions, number) if e.kind == "status_changed"]
    assert moves == [{"from": "assigned", "to": "in_progress"}]
    assert kinds(sessions, number).count("agent_reply") == 2
    service.end(sessions, number, "wang", NOW + timedelta(minutes=4), "handed_back")
    with pytest.raises(NotLive):
        service.add_agent_message(sessions, number, "wang", "还在吗", NOW + timedelta(minutes=5))


def test_agent_messages_wait_until_delivered(sessions):
    start = claimed(sessions)
    number, conversation = start.ticket.number, start.handoff.conversation_id
    service.customer_said(sessions, conversation, "你好", NOW + timedelta(minutes=1))
    first = service.add_agent_message(sessions, number, "wang", "您好", NOW + timedelta(minutes=2))
    second = service.add_agent_message(sessions, number, "wang", "请问户号是多少", NOW + timedelta(minutes=3))
    assert [m.id for m in service.undelivered(sessions, conversation)] == [first.id, second.id]

    service.message_failed(sessions, first.id, "对话服务暂时连不上")
    pending = service.undelivered(sessions, conversation)
    assert [(m.id, m.error) for m in pending] == [(first.id, "对话服务暂时连不上"), (second.id, None)]

    service.delivered(sessions, first.id, NOW + timedelta(minutes=4))
    assert [m.id for m in service.undelivered(sessions, conversation)] == [second.id]
    sent = service.agent_message(sessions, first.id)
    assert (sent.delivered_at, sent.error) == (NOW + timedelta(minutes=4), None)
    customer_line = service.messages(sessions, number)[0]
    with pytest.raises(NotLive):
        service.agent_message(sessions, customer_line.id)


def test_one_reminder_while_nobody_has_picked_the_customer_up(sessions):
    waiting = hand_over(sessions)
    conversation = waiting.handoff.conversation_id
    assert service.take_reminder(sessions, conversation, NOW + timedelta(minutes=3)) is True
    assert service.take_reminder(sessions, conversation, NOW + timedelta(minutes=6)) is False
    assert service.live_handoff(sessions, conversation).reminder_sent_at == NOW + timedelta(minutes=3)
    picked_up = claimed(sessions)
    assert service.take_reminder(sessions, picked_up.handoff.conversation_id, NOW + timedelta(minutes=3)) is False
    assert service.take_reminder(sessions, f"handoff-{uuid.uuid4().hex}", NOW) is False


# --- the end: hand-back, resolution, return visit ------------------------------------------


def test_hand_back_ends_the_handoff_and_frees_the_conversation(sessions):
    start = claimed(sessions)
    number, conversation = start.ticket.number, start.handoff.conversation_id
    ended = service.end(sessions, number, "wang", NOW + timedelta(minutes=5), "handed_back")
    assert (ended.status, ended.end_reason, ended.ended_by) == ("ended", "handed_back", "wang")
    assert not ended.is_live and ended.ended_at == NOW + timedelta(minutes=5)
    assert service.live_handoff(sessions, conversation) is None
    assert service.customer_said(sessions, conversation, "谢谢", NOW + timedelta(minutes=6)) is None
    assert service.end(sessions, number, "wang", NOW + timedelta(minutes=6), "handed_back") is None
    assert "handoff_handed_back" in kinds(sessions, number)

    later = service.start(sessions, number, conversation, "rest", "request_human", NOW + timedelta(hours=1))
    assert later.handoff.id != start.handoff.id and later.handoff.status == "waiting"
    assert service.live_handoff(sessions, conversation).id == later.handoff.id


def test_resolving_ends_the_handoff_and_the_return_visit_falls_due(sessions):
    start = claimed(sessions)
    number = start.ticket.number
    at = NOW + timedelta(hours=1)
    ticket = service.resolve(sessions, number, "wang", "经核实为阶梯电价，电费无误", at)
    assert (ticket.status, ticket.resolution, ticket.resolved_at) == ("resolved", "经核实为阶梯电价，电费无误", at)
    assert ticket.return_visit_due_at == at + timedelta(days=14) == at + timedelta(days=RETURN_VISIT_DAYS)
    assert find_ticket(sessions, number).return_visit_due_at == at + timedelta(days=14)
    handoff = service.handoff_for_ticket(sessions, number)
    assert (handoff.status, handoff.end_reason, handoff.ended_by) == ("ended", "resolved", "wang")
    assert service.live_handoff(sessions, start.handoff.conversation_id) is None
    assert number in numbers(service.return_visits(sessions, at))


def test_return_visits_soonest_due_first(sessions):
    filed_first = file_ticket(sessions, draft(), NOW).ticket.number
    filed_second = file_ticket(sessions, draft(), NOW).ticket.number
    service.resolve(sessions, filed_second, "wang", "已处理", NOW + timedelta(days=1))
    service.resolve(sessions, filed_first, "wang", "已处理", NOW + timedelta(days=2))
    visits = service.return_visits(sessions, NOW + timedelta(days=2))
    due = numbers(visits)
    assert due.index(filed_second) < due.index(filed_first)  # resolved first, visited first
    dates = [t.return_visit_due_at for t in visits]
    assert dates == sorted(dates)


def test_a_satisfied_return_visit_closes_the_ticket(sessions):
    number = file_ticket(sessions, draft(), NOW).ticket.number
    service.resolve(sessions, number, "wang", "已处理", NOW + timedelta(hours=2))
    closed = service.close_return_visit(
        sessions, number, "zhao", NOW + timedelta(days=3), satisfied=True, notes=" 客户认可处理结果 "
    )
    assert (closed.status, closed.return_visit_result) == ("closed", "满意：客户认可处理结果")
    assert number not in numbers(service.return_visits(sessions, NOW + timedelta(days=3)))


def test_an_unsatisfied_return_visit_reopens_the_ticket(sessions):
    number = file_ticket(sessions, draft(), NOW).ticket.number
    service.resolve(sessions, number, "wang", "已处理", NOW + timedelta(hours=2))
    reopened = service.close_return_visit(sessions, number, "zhao", NOW + timedelta(days=3), satisfied=False, notes="")
    assert (reopened.status, reopened.return_visit_result) == ("in_progress", "不满意")
    assert (reopened.resolved_at, reopened.return_visit_due_at) == (None, None)
    assert number not in numbers(service.return_visits(sessions, NOW + timedelta(days=3)))
    assert [e.actor for e in ticket_events(sessions, number) if e.kind == "return_visit"] == ["agent:zhao"]


@pytest.mark.parametrize("satisfied", [True, False])
def test_a_return_visit_is_recorded_once(sessions, satisfied):
    """A second submission (a double click, a stale page) is refused and changes nothing."""
    number = file_ticket(sessions, draft(), NOW).ticket.number
    service.resolve(sessions, number, "wang", "已处理", NOW + timedelta(hours=2))
    first = service.close_return_visit(sessions, number, "zhao", NOW + timedelta(days=3), satisfied=satisfied, notes="")
    with pytest.raises(IllegalTransition):
        service.close_return_visit(sessions, number, "li", NOW + timedelta(days=4), satisfied=not satisfied, notes="")
    assert find_ticket(sessions, number) == first
    assert [e.actor for e in ticket_events(sessions, number) if e.kind == "return_visit"] == ["agent:zhao"]


def test_a_reopened_ticket_resolved_again_gets_a_return_visit_again(sessions):
    number = file_ticket(sessions, draft(), NOW).ticket.number
    service.resolve(sessions, number, "wang", "已处理", NOW + timedelta(hours=2))
    service.close_return_visit(sessions, number, "zhao", NOW + timedelta(days=3), satisfied=False, notes="电费仍偏高")
    again = service.resolve(sessions, number, "wang", "已退还多收电费", NOW + timedelta(days=4))
    assert again.return_visit_due_at == NOW + timedelta(days=4 + 14)
    assert number in numbers(service.return_visits(sessions, NOW + timedelta(days=4)))
    closed = service.close_return_visit(sessions, number, "zhao", NOW + timedelta(days=5), satisfied=True, notes="")
    assert (closed.status, closed.return_visit_result) == ("closed", "满意")
    assert "不满意：电费仍偏高" in [e.detail.get("return_visit_result") for e in ticket_events(sessions, number)]


# --- what agents change on the ticket -------------------------------------------------------


def test_showing_personal_data_is_in_the_history(sessions):
    number = file_ticket(sessions, draft(), NOW).ticket.number
    service.record_pii_view(sessions, number, "wang", NOW + timedelta(minutes=1), "callback_phone")
    shown = ticket_events(sessions, number)[-1]
    assert (shown.kind, shown.actor, shown.detail, shown.at) == (
        "pii_shown",
        "agent:wang",
        {"what": "callback_phone"},
        NOW + timedelta(minutes=1),
    )


def test_update_ticket_records_each_change_once(sessions):
    ticket = file_ticket(sessions, draft(), NOW).ticket
    assert (ticket.priority, ticket.sla_due_at) == ("normal", NOW + timedelta(days=1))
    at = NOW + timedelta(minutes=30)
    updated = update_ticket(
        sessions,
        ticket.number,
        "agent:wang",
        at,
        category="metering",
        priority="high",
        substantiated=True,
        unit=" 城东供电所 ",
    )
    assert (updated.category, updated.priority, updated.substantiated, updated.unit) == (
        "metering",
        "high",
        True,
        "城东供电所",
    )
    assert updated.sla_due_at == NOW + timedelta(minutes=120)  # from filing, not from the change
    assert find_ticket(sessions, ticket.number).sla_due_at == NOW + timedelta(minutes=120)
    [change] = [e for e in ticket_events(sessions, ticket.number) if e.kind == "updated"]
    assert (change.actor, change.at) == ("agent:wang", at)
    assert change.detail["category"] == {"from": "tariff_billing", "to": "metering"}
    assert change.detail["priority"] == {"from": "normal", "to": "high"}
    assert change.detail["substantiated"] == {"from": None, "to": True}
    assert change.detail["unit"] == {"from": None, "to": "城东供电所"}

    same = update_ticket(
        sessions, ticket.number, "agent:li", at, category="metering", priority="high", unit="城东供电所"
    )
    assert same == updated
    assert kinds(sessions, ticket.number).count("updated") == 1

    not_substantiated = update_ticket(sessions, ticket.number, "agent:li", at, substantiated=False)
    assert not_substantiated.substantiated is False
    last = ticket_events(sessions, ticket.number)[-1]
    assert (last.kind, last.detail) == ("updated", {"substantiated": {"from": True, "to": False}})


@pytest.mark.parametrize("wrong", [{"category": "weather"}, {"priority": "asap"}])
def test_update_ticket_refuses_unknown_values(sessions, wrong):
    ticket = file_ticket(sessions, draft(), NOW).ticket
    with pytest.raises(InvalidDraft):
        update_ticket(sessions, ticket.number, "agent:wang", NOW, **wrong)
    assert find_ticket(sessions, ticket.number) == ticket
    assert "updated" not in kinds(sessions, ticket.number)


def test_the_customers_rating_is_kept(sessions):
    number = file_ticket(sessions, draft(), NOW).ticket.number
    rated = record_satisfaction(sessions, number, 4, "客服很耐心", NOW + timedelta(hours=1))
    assert (rated.satisfaction, rated.satisfaction_comment) == (4, "客服很耐心")
    last = ticket_events(sessions, number)[-1]
    assert (last.kind, last.actor, last.detail) == ("satisfaction", "customer", {"score": 4, "comment": "客服很耐心"})
    for wrong in (0, 6):
        with pytest.raises(InvalidDraft):
            record_satisfaction(sessions, number, wrong, None, NOW + timedelta(hours=2))
    assert find_ticket(sessions, number).satisfaction == 4


def test_a_conversation_is_counted_once(sessions):
    conversation = f"counted-{uuid.uuid4().hex}"
    service.record_conversation(sessions, conversation, "socketio", NOW)
    service.record_conversation(sessions, conversation, "socketio", NOW + timedelta(minutes=1))
    with sessions() as session:
        rows = session.scalars(select(ConversationRow).where(ConversationRow.conversation_id == conversation)).all()
        assert [(r.channel, r.started_at) for r in rows] == [("socketio", NOW)]


# --- the agents' queue -------------------------------------------------------------------------


def test_queue_lists_open_tickets_and_live_handoffs_most_urgent_first(sessions):
    later = NOW + timedelta(hours=1)
    normal_due_first = file_ticket(sessions, draft(), later).ticket.number
    normal_due_next = file_ticket(sessions, draft(), later + timedelta(minutes=10)).ticket.number
    urgent = file_ticket(sessions, draft(**URGENT), later + timedelta(minutes=20)).ticket.number
    live = hand_over(sessions, later + timedelta(minutes=30), **UPSET)
    service.customer_said(sessions, live.handoff.conversation_id, "有人吗", later + timedelta(minutes=31))
    service.customer_said(sessions, live.handoff.conversation_id, "快点处理", later + timedelta(minutes=32))
    resolved = file_ticket(sessions, draft(**URGENT), later).ticket.number
    service.resolve(sessions, resolved, "wang", "已处理", later + timedelta(minutes=40))
    closed = file_ticket(sessions, draft(**URGENT), later).ticket.number
    change_status(sessions, closed, "resolved", "agent:wang", later)
    change_status(sessions, closed, "closed", "agent:wang", later)

    items = service.queue(sessions, later + timedelta(minutes=45))
    listed = numbers(item.ticket for item in items)
    mine = [n for n in listed if n in {normal_due_first, normal_due_next, urgent, live.ticket.number}]
    assert mine == [urgent, live.ticket.number, normal_due_first, normal_due_next]
    assert resolved not in listed and closed not in listed
    assert all(item.ticket.status not in ("resolved", "closed") for item in items)
    ranks = [("urgent", "high", "normal").index(item.ticket.priority) for item in items]
    assert ranks == sorted(ranks)

    by_number = {item.ticket.number: item for item in items}
    waiting = by_number[live.ticket.number]
    assert waiting.handoff.id == live.handoff.id and waiting.handoff.is_live
    assert (waiting.last_message.speaker, waiting.last_message.text) == ("customer", "快点处理")
    assert (by_number[urgent].handoff, by_number[urgent].last_message) == (None, None)


# --- reading the customer's score --------------------------------------------------------------


@pytest.mark.parametrize(
    "text, rating",
    [
        ("5", (5, None)),
        ("4分，客服很耐心", (4, "客服很耐心")),
        ("五星", (5, None)),
        ("3颗星", (3, None)),
        ("非常不满意", (1, None)),
        ("不满意", (2, None)),
        ("满意", (4, None)),
        ("非常满意", (5, None)),
        ("一般", (3, None)),
        ("我要查电费", None),
        ("3201000001", None),
        ("13800000001", None),
        ("", None),
        (None, None),
        ("GD202611240001", None),
        # numbers that are not scores: how long, which building, how many minutes
        ("我家停电2天了", None),
        ("3号楼停电了", None),
        ("等了5分钟才有人理我", None),
        ("一分钟都等不了", None),
        ("等了5分钟，不满意", (2, "等了5分钟，不满意")),
        ("打5分", (5, "打")),
        ("5，很好", (5, "很好")),
        # questions and other requests after "please rate us" are not ratings
        ("电费为什么这么高，一般多少", None),
        ("你们还行不行啊", None),
        ("满意吗？我要投诉", None),
        ("停电一般多久能来电", None),
        ("还算满意", (4, None)),
    ],
)
def test_parse_rating(text, rating):
    assert parse_rating(text) == rating


# --- the console's calls to the Rasa server ------------------------------------------------------


@dataclass
class RasaStandIn:
    """A real HTTP server on loopback that answers trigger_intent with `status`."""

    status: int = 200
    calls: list[tuple[str, str, dict]] = field(default_factory=list)

    @contextmanager
    def serving(self) -> Iterator[str]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                stand_in.calls.append((self.command, self.path, json.loads(body or b"{}")))
                answer = b'{"tracker": {}}' if stand_in.status == 200 else b'{"error": "boom"}'
                self.send_response(stand_in.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:
                pass

        with running(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as url:
            yield url


@pytest.fixture
def rasa(monkeypatch) -> Iterator[RasaStandIn]:
    stand_in = RasaStandIn()
    with stand_in.serving() as url:
        monkeypatch.setenv("RASA_URL", url + "/")
        yield stand_in


def test_trigger_posts_the_intent_to_the_conversation(rasa, monkeypatch):
    monkeypatch.setenv("RASA_TOKEN", "s3cret")
    desk.trigger("wx:o/1 2?&", "EXTERNAL_agent_reply")
    [(method, target, body)] = rasa.calls
    path, query = urlsplit(target).path, parse_qs(urlsplit(target).query)
    assert method == "POST"
    assert path == "/conversations/wx%3Ao%2F1%202%3F%26/trigger_intent"
    assert query == {"output_channel": ["latest"], "token": ["s3cret"]}
    assert body == {"name": "EXTERNAL_agent_reply"}


def test_trigger_without_a_token_sends_none(rasa):
    desk.trigger("c1", "EXTERNAL_hand_back")
    [(_, target, body)] = rasa.calls
    assert parse_qs(urlsplit(target).query) == {"output_channel": ["latest"]}
    assert body == {"name": "EXTERNAL_hand_back"}


def test_a_refusing_or_absent_rasa_server_is_unavailable(rasa, monkeypatch):
    rasa.status = 500
    with pytest.raises(RasaUnavailable, match="500"):
        desk.trigger("c1", "EXTERNAL_agent_reply")
    assert len(rasa.calls) == 1
    monkeypatch.setenv("RASA_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(RasaUnavailable):
        desk.trigger("c1", "EXTERNAL_agent_reply")


def test_a_reply_rasa_took_but_no_action_said_is_marked_failed(sessions, rasa):
    """Rasa answers 200 even when its call to the action server failed: the reply is
    delivered only once action_agent_reply has said it (the e2e tests show that path)."""
    start = claimed(sessions)
    conversation = start.handoff.conversation_id
    message = desk.reply(sessions, start.ticket.number, "wang", "您好，我来处理", NOW + timedelta(minutes=2))
    assert message.text == "您好，我来处理" and "未能送达" in message.error
    assert [(urlsplit(t).path, b) for _, t, b in rasa.calls] == [
        (f"/conversations/{conversation}/trigger_intent", {"name": "EXTERNAL_agent_reply"})
    ]
    assert [(m.id, m.error) for m in service.undelivered(sessions, conversation)] == [(message.id, message.error)]


def test_reply_with_rasa_down_stays_undelivered(sessions):
    start = claimed(sessions)
    message = desk.reply(sessions, start.ticket.number, "wang", "您好", NOW + timedelta(minutes=2))
    assert message.error and message.delivered_at is None
    pending = service.undelivered(sessions, start.handoff.conversation_id)
    assert [(m.id, m.error) for m in pending] == [(message.id, message.error)]


def test_hand_back_through_rasa(sessions, rasa):
    start = claimed(sessions)
    handoff = desk.hand_back(sessions, start.ticket.number, "wang", NOW + timedelta(minutes=5))
    assert handoff.end_reason == "handed_back"
    assert [b for _, _, b in rasa.calls] == [{"name": "EXTERNAL_hand_back"}]
    with pytest.raises(NotLive):
        desk.hand_back(sessions, start.ticket.number, "wang", NOW + timedelta(minutes=6))
    assert len(rasa.calls) == 1


def test_resolve_through_rasa(sessions, rasa):
    start = claimed(sessions)
    ticket = desk.resolve(sessions, start.ticket.number, "wang", "已恢复供电", NOW + timedelta(minutes=30))
    assert (ticket.status, ticket.resolution) == ("resolved", "已恢复供电")
    assert [b for _, _, b in rasa.calls] == [{"name": "EXTERNAL_handoff_resolved"}]


def test_resolve_with_rasa_down_still_resolves_and_notes_it(sessions):
    start = claimed(sessions)
    number = start.ticket.number
    with pytest.raises(RasaUnavailable):
        desk.resolve(sessions, number, "wang", "已恢复供电", NOW + timedelta(minutes=30))
    ticket = find_ticket(sessions, number)
    assert (ticket.status, ticket.resolution) == ("resolved", "已恢复供电")
    assert service.handoff_for_ticket(sessions, number).status == "ended"
    notes = [e for e in ticket_events(sessions, number) if e.kind == "note"]
    assert [(n.actor, "未能实时发给客户" in n.detail["text"]) for n in notes] == [("agent:wang", True)]
