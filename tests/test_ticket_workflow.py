"""A ticket's life on real SQLite and PostgreSQL: every allowed move, the refused ones,
assignment, notes, the callback phone, and the history that cannot be rewritten."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, select, update

from bot.db import session_factory
from bot.tickets.errors import EventHistoryIsAppendOnly, IllegalTransition, InvalidDraft, TicketNotFound
from bot.tickets.models import TicketEventRow
from bot.tickets.service import (
    add_note,
    assign,
    change_status,
    file_ticket,
    find_ticket,
    record_return_visit,
    set_callback_phone,
    ticket_events,
)
from bot.tickets.workflow import TRANSITIONS
from tests.ticket_drafts import NOW, draft


@pytest.fixture
def sessions(database_url: str):
    return session_factory(database_url)


# how to bring a new ticket to each status
_PATH = {"new": [], "assigned": ["assigned"], "in_progress": ["in_progress"], "resolved": ["resolved"]}
_PATH["closed"] = ["resolved", "closed"]
ALLOWED = sorted((old, new) for old, moves in TRANSITIONS.items() for new in moves)


@pytest.mark.parametrize("old, new", ALLOWED, ids=[f"{o}->{n}" for o, n in ALLOWED])
def test_allowed_move(sessions, old, new):
    ticket = file_ticket(sessions, draft(), NOW).ticket
    for step in _PATH[old]:
        change_status(sessions, ticket.number, step, "agent:wang", NOW)
    later = NOW + timedelta(hours=2)
    moved = change_status(sessions, ticket.number, new, "agent:li", later, note="已联系客户")
    assert (moved.status, moved.updated_at) == (new, later)
    last = ticket_events(sessions, ticket.number)[-1]
    assert (last.kind, last.actor, last.at) == ("status_changed", "agent:li", later)
    assert last.detail == {"from": old, "to": new, "note": "已联系客户"}
    assert (moved.open_key is None) == (new in ("resolved", "closed"))


@pytest.mark.parametrize(
    "old, new",
    [("closed", "in_progress"), ("new", "closed"), ("resolved", "assigned"), ("closed", "resolved"),
     ("in_progress", "new"), ("new", "new"), ("new", "done")],
)
def test_illegal_move(sessions, old, new):
    ticket = file_ticket(sessions, draft(), NOW).ticket
    for step in _PATH[old]:
        change_status(sessions, ticket.number, step, "agent:wang", NOW)
    before = ticket_events(sessions, ticket.number)
    with pytest.raises(IllegalTransition, match=new):
        change_status(sessions, ticket.number, new, "agent:wang", NOW)
    assert find_ticket(sessions, ticket.number).status == old
    assert ticket_events(sessions, ticket.number) == before


def test_illegal_move_says_from_and_to_in_words(sessions):
    ticket = file_ticket(sessions, draft(), NOW).ticket
    with pytest.raises(IllegalTransition, match="from new .待处理. to closed .已归档."):
        change_status(sessions, ticket.number, "closed", "agent:wang", NOW)


def test_unknown_number_is_not_found(sessions):
    with pytest.raises(TicketNotFound):
        change_status(sessions, "GD209901010001", "resolved", "agent:wang", NOW)
    with pytest.raises(TicketNotFound):
        assign(sessions, "no such thing", "wang", "supervisor:zhao", NOW)
    assert find_ticket(sessions, "GD209901010001") is None


def test_resolution_note_and_reopening_restore_the_key(sessions):
    ticket = file_ticket(sessions, draft(), NOW).ticket
    resolved = change_status(sessions, ticket.number, "resolved", "agent:wang", NOW, note="已核实并退还多收电费")
    assert resolved.resolution == "已核实并退还多收电费" and resolved.open_key is None
    reopened = change_status(sessions, ticket.number, "in_progress", "agent:wang", NOW)
    assert reopened.open_key == ticket.open_key
    assert not file_ticket(sessions, draft(conversation_id=ticket.conversation_id), NOW).created


def test_assign_note_and_callback_phone(sessions):
    ticket = file_ticket(sessions, draft(), NOW).ticket
    assigned = assign(sessions, ticket.number, "wang", "supervisor:zhao", NOW + timedelta(minutes=1))
    assert (assigned.status, assigned.assigned_agent) == ("assigned", "wang")
    again = assign(sessions, ticket.number, "li", "supervisor:zhao", NOW + timedelta(minutes=2))
    assert again.assigned_agent == "li"
    add_note(sessions, ticket.number, "agent:li", "已电话联系，客户不在家", NOW + timedelta(minutes=3))
    phoned = set_callback_phone(sessions, ticket.number, "138 0000 0002", "customer", NOW + timedelta(minutes=4))
    assert phoned.callback_phone == "13800000002"
    with pytest.raises(InvalidDraft):
        set_callback_phone(sessions, ticket.number, "12345", "customer", NOW)
    events = ticket_events(sessions, ticket.number)
    assert [(e.kind, e.actor) for e in events] == [
        ("filed", "bot"),
        ("assigned", "supervisor:zhao"),
        ("assigned", "supervisor:zhao"),
        ("note", "agent:li"),
        ("callback_phone_changed", "customer"),
    ]
    assert events[2].detail == {"agent": "li", "from_agent": "wang", "from": "assigned"}
    assert events[4].detail == {"from": None, "to": "138****0002"}
    change_status(sessions, ticket.number, "resolved", "agent:li", NOW)
    with pytest.raises(IllegalTransition):
        assign(sessions, ticket.number, "wang", "supervisor:zhao", NOW)


def test_escalation_is_recorded(sessions):
    ticket = file_ticket(sessions, draft(escalation="request_human"), NOW).ticket
    assert [(e.kind, e.detail) for e in ticket_events(sessions, ticket.number)][1] == (
        "escalated",
        {"reason": "request_human"},
    )


def test_events_cannot_be_changed_or_deleted(sessions):
    ticket = file_ticket(sessions, draft(), NOW).ticket
    with sessions() as session:
        event = session.scalars(select(TicketEventRow).where(TicketEventRow.ticket_id == ticket.id)).first()
        event.detail = "{}"
        with pytest.raises(EventHistoryIsAppendOnly):
            session.flush()
    with sessions() as session:
        event = session.scalars(select(TicketEventRow).where(TicketEventRow.ticket_id == ticket.id)).first()
        session.delete(event)
        with pytest.raises(EventHistoryIsAppendOnly):
            session.flush()
    with sessions() as session, pytest.raises(EventHistoryIsAppendOnly):
        session.execute(update(TicketEventRow).where(TicketEventRow.ticket_id == ticket.id).values(actor="x"))
    with sessions() as session, pytest.raises(EventHistoryIsAppendOnly):
        session.execute(delete(TicketEventRow).where(TicketEventRow.ticket_id == ticket.id))
    assert [e.kind for e in ticket_events(sessions, ticket.number)] == ["filed"]


def test_return_visit_is_recorded(sessions):
    ticket = file_ticket(sessions, draft(), NOW).ticket
    change_status(sessions, ticket.number, "resolved", "agent:wang", NOW)
    later = NOW + timedelta(days=3)
    visited = record_return_visit(
        sessions, ticket.number, "agent:zhao", later, result="客户表示满意", substantiated=True, satisfaction=5
    )
    assert (visited.return_visit_result, visited.substantiated, visited.satisfaction) == ("客户表示满意", True, 5)
    assert visited.satisfaction_comment is None and visited.updated_at == later
    last = ticket_events(sessions, ticket.number)[-1]
    assert (last.kind, last.actor, last.detail["satisfaction"]) == ("return_visit", "agent:zhao", 5)
    with pytest.raises(InvalidDraft):
        record_return_visit(sessions, ticket.number, "agent:zhao", later, satisfaction=6)
    assert change_status(sessions, ticket.number, "closed", "agent:zhao", later).status == "closed"
