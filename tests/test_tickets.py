"""The ticket service on real SQLite and PostgreSQL: numbers under concurrency,
idempotency, priorities and deadlines, what is stored (masked, whole, as text), who may
see a ticket, and the migration."""

from __future__ import annotations

import multiprocessing
import re
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import date, datetime, timedelta

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import event, inspect, select

import bot.models  # noqa: F401  (the whole schema, for the migration check)
from bot import clock
from bot.db import Base, engine_for, session_factory
from bot.schema import alembic_config, upgrade
from bot.tickets.errors import InvalidDraft
from bot.tickets.models import TicketSequence
from bot.tickets.priority import sla_due, sla_minutes
from bot.tickets.records import Draft, TranscriptLine
from bot.tickets.service import (
    change_status,
    conversation_tickets,
    file_ticket,
    find_ticket,
    open_tickets,
    recent_complaint,
    short,
    ticket_events,
    ticket_for_customer,
    ticket_transcript,
    tickets_db,
)
from tests.ticket_drafts import NOW, draft, new_account

NUMBER = re.compile(r"GD\d{8}\d{4}")


@pytest.fixture
def sessions(database_url: str):
    return session_factory(database_url)


# --- numbers ---------------------------------------------------------------------------


def test_number_is_gd_date_and_daily_sequence(sessions):
    now = clock.now()
    first = file_ticket(sessions, draft(), now).ticket
    second = file_ticket(sessions, draft(), now).ticket
    assert NUMBER.fullmatch(first.number) and first.number.startswith(f"GD{now:%Y%m%d}")
    assert int(second.number[-4:]) == int(first.number[-4:]) + 1


def test_sequence_starts_again_each_day(sessions):
    day_one, day_two = datetime(2030, 2, 1, 23, 59), datetime(2030, 2, 2, 0, 1)
    assert file_ticket(sessions, draft(), day_one).ticket.number == "GD203002010001"
    assert file_ticket(sessions, draft(), day_two).ticket.number == "GD203002020001"
    assert file_ticket(sessions, draft(), day_one).ticket.number == "GD203002010002"


def _numbers_of_day(sessions, day: date) -> int:
    with sessions() as session:
        return session.scalar(select(TicketSequence.last).where(TicketSequence.day == day))


def test_hundred_tickets_filed_in_parallel_get_distinct_numbers(sessions):
    now = datetime(2031, 1, 15, 9, 30)

    def file_one(i: int) -> str:
        return file_ticket(sessions, draft(conversation_id=f"parallel-{i}-{uuid.uuid4().hex}"), now).ticket.number

    with ThreadPoolExecutor(max_workers=16) as pool:
        numbers = list(pool.map(file_one, range(100)))
    assert len(set(numbers)) == 100
    assert sorted(int(n[-4:]) for n in numbers) == list(range(1, 101))
    assert all(n.startswith("GD20310115") for n in numbers)
    assert _numbers_of_day(sessions, now.date()) == 100


def _file_in_process(url: str, worker: int, count: int) -> list[str]:
    sessions = session_factory(url)
    now = datetime(2031, 1, 16, 9, 30)
    return [
        file_ticket(sessions, draft(conversation_id=f"process-{worker}-{i}"), now).ticket.number for i in range(count)
    ]


def test_tickets_filed_from_processes_get_distinct_numbers(database_url, sessions):
    if not database_url.startswith("postgresql"):
        pytest.skip("several processes writing one SQLite file is not the production setup")
    with ProcessPoolExecutor(max_workers=4, mp_context=multiprocessing.get_context("spawn")) as pool:
        batches = list(pool.map(_file_in_process, [database_url] * 4, range(4), [25] * 4))
    numbers = [n for batch in batches for n in batch]
    assert sorted(int(n[-4:]) for n in numbers) == list(range(1, 101))
    assert _numbers_of_day(sessions, date(2031, 1, 16)) == 100


# --- idempotency -----------------------------------------------------------------------


def test_filing_the_same_draft_twice_gives_one_ticket(sessions):
    same = draft()
    first = file_ticket(sessions, same, NOW)
    again = file_ticket(sessions, same, NOW + timedelta(minutes=3))
    assert first.created and not again.created
    assert again.ticket == first.ticket
    assert [t.number for t in conversation_tickets(sessions, same.conversation_id)] == [first.ticket.number]


def test_two_filers_of_the_same_draft_at_once_get_one_ticket(sessions):
    same = draft()
    start = threading.Barrier(2)

    def file_once(_: int):
        start.wait()
        return file_ticket(sessions, same, NOW)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(file_once, range(2)))
    assert sorted(r.created for r in results) == [False, True]
    assert results[0].ticket.number == results[1].ticket.number
    assert len(conversation_tickets(sessions, same.conversation_id, open_only=False)) == 1


def test_after_resolving_the_same_complaint_files_a_new_ticket(sessions):
    same = draft()
    first = file_ticket(sessions, same, NOW).ticket
    resolved = change_status(sessions, first.number, "resolved", "agent:wang", NOW + timedelta(hours=1))
    assert resolved.open_key is None
    second = file_ticket(sessions, same, NOW + timedelta(hours=2))
    assert second.created and second.ticket.number != first.number


def test_another_subject_or_category_in_the_same_conversation_is_another_ticket(sessions):
    first = draft()
    other_subject = file_ticket(sessions, draft(conversation_id=first.conversation_id, subject="bill_too_high"), NOW)
    other_category = file_ticket(sessions, draft(conversation_id=first.conversation_id, category="metering"), NOW)
    assert file_ticket(sessions, first, NOW).created and other_subject.created and other_category.created


def test_two_filers_of_the_same_draft_across_midnight_get_one_ticket(database_url, sessions):
    """Different days serialise on different sequence rows: the open key's constraint decides."""
    same = draft()
    inserted, release = threading.Event(), threading.Event()
    holder = {}

    def hold_after_insert(conn, cursor, statement, parameters, context, executemany) -> None:
        if threading.current_thread() is holder.get("thread") and statement.startswith("INSERT INTO tickets "):
            inserted.set()
            release.wait(10)

    engine = engine_for(database_url)
    event.listen(engine, "after_cursor_execute", hold_after_insert)
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:

            def before_midnight():
                holder["thread"] = threading.current_thread()
                return file_ticket(sessions, same, datetime(2032, 5, 1, 23, 59, 59))

            first = pool.submit(before_midnight)
            assert inserted.wait(10)
            second = pool.submit(file_ticket, sessions, same, datetime(2032, 5, 2, 0, 0, 1))
            time.sleep(0.5)  # the second filer is now waiting on the first one's transaction
            release.set()
            results = [first.result(), second.result()]
    finally:
        release.set()
        event.remove(engine, "after_cursor_execute", hold_after_insert)
    assert [r.created for r in results] == [True, False]
    assert results[1].ticket.number == results[0].ticket.number == "GD203205010001"
    assert len(conversation_tickets(sessions, same.conversation_id, open_only=False)) == 1
    assert file_ticket(sessions, draft(), datetime(2032, 5, 2, 8, 0)).ticket.number == "GD203205020001"


# --- priorities and deadlines ------------------------------------------------------------


def test_hazard_is_urgent_and_due_in_45_minutes(sessions):
    ticket = file_ticket(sessions, draft(request_type="fault_repair", subject="hazard", category="outage"), NOW).ticket
    assert ticket.priority == "urgent"
    assert ticket.sla_due_at == NOW + timedelta(minutes=45)
    filed = ticket_events(sessions, ticket.number)[0]
    assert filed.kind == "filed" and filed.detail["reasons"] == ["hazard"]


def test_life_critical_description_is_urgent(sessions):
    ticket = file_ticket(sessions, draft(description="停电了，家里老人用呼吸机！", category="outage"), NOW).ticket
    assert ticket.priority == "urgent"


def test_upset_customer_is_high(sessions):
    ticket = file_ticket(sessions, draft(frustration=2), NOW).ticket
    assert (ticket.priority, ticket.sla_due_at) == ("high", NOW + timedelta(minutes=120))


def test_key_account_is_high(sessions):
    assert file_ticket(sessions, draft(account_number=new_account(), key_account=True), NOW).ticket.priority == "high"


def test_plain_complaint_is_normal_and_due_in_a_day(sessions):
    ticket = file_ticket(sessions, draft(account_number=new_account()), NOW).ticket
    assert (ticket.priority, ticket.sla_due_at) == ("normal", NOW + timedelta(days=1))


def test_repeated_complaint_within_30_days_is_high(sessions):
    account = new_account()
    file_ticket(sessions, draft(account_number=account), NOW - timedelta(days=29))
    again = file_ticket(sessions, draft(account_number=account), NOW).ticket
    assert again.priority == "high"
    assert ticket_events(sessions, again.number)[0].detail["reasons"] == ["repeated"]
    other_category = file_ticket(sessions, draft(account_number=account, category="metering"), NOW).ticket
    assert other_category.priority == "normal"


def test_complaint_31_days_ago_is_not_a_repeat(sessions):
    account = new_account()
    file_ticket(sessions, draft(account_number=account), NOW - timedelta(days=31))
    assert file_ticket(sessions, draft(account_number=account), NOW).ticket.priority == "normal"


def test_recent_complaint_by_account_or_conversation(sessions):
    account, first = new_account(), draft(category="metering")
    file_ticket(sessions, Draft(**{**first.__dict__, "account_number": account}), NOW - timedelta(days=3))
    assert recent_complaint(sessions, account, "metering", NOW)
    assert not recent_complaint(sessions, account, "outage", NOW)
    assert not recent_complaint(sessions, account, "metering", NOW + timedelta(days=30))
    assert recent_complaint(sessions, None, "metering", NOW, conversation_id=first.conversation_id)
    assert not recent_complaint(sessions, None, "metering", NOW)


def test_sla_minutes_come_from_the_environment(sessions, monkeypatch):
    assert sla_minutes("normal") == 1440
    monkeypatch.setenv("TICKET_SLA_NORMAL_MINUTES", "30")
    monkeypatch.setenv("TICKET_SLA_URGENT_MINUTES", "20")
    assert sla_due("urgent", NOW) == NOW + timedelta(minutes=20)
    ticket = file_ticket(sessions, draft(account_number=new_account()), NOW).ticket
    assert ticket.sla_due_at == ticket.created_at + timedelta(minutes=30)
    with pytest.raises(ValueError):
        sla_minutes("whenever")


# --- what is stored ----------------------------------------------------------------------


def test_transcript_is_masked(sessions):
    said = [
        TranscriptLine("customer", "我的手机13800000001，户号3201000001", NOW),
        TranscriptLine("bot", "好的，已为您登记。", None),
    ]
    ticket = file_ticket(sessions, draft(transcript=said), NOW).ticket
    assert ticket_transcript(sessions, ticket.number) == [
        TranscriptLine("customer", "我的手机138****0001，户号3201****01", NOW),
        TranscriptLine("bot", "好的，已为您登记。", None),
    ]


def test_long_description_is_stored_whole_and_shown_short(sessions):
    long = "电费" * 2500
    ticket = file_ticket(sessions, draft(description=long), NOW).ticket
    assert find_ticket(sessions, ticket.number).description == long
    assert len(short(long)) == 60 and short(long).endswith("…")
    assert short("电费太高") == "电费太高"
    assert short("第一行\n第二行", limit=5) == "第一行 …"


@pytest.mark.parametrize("hostile", ["<script>alert(1)</script>", "'; DROP TABLE tickets; --", "😡💡⚡ 表情"])
def test_hostile_text_is_stored_as_text(sessions, hostile):
    ticket = file_ticket(sessions, draft(description=hostile, place=hostile, facts={"note": hostile}), NOW).ticket
    stored = find_ticket(sessions, ticket.number)
    assert (stored.description, stored.place, stored.facts) == (hostile, hostile, {"note": hostile})
    assert find_ticket(sessions, ticket.number).number == ticket.number  # the table is still there


def test_nul_characters_are_dropped(sessions):
    """PostgreSQL text cannot hold NUL; a customer's stray one must not lose the ticket."""
    said = [TranscriptLine("customer", "停\x00电", NOW)]
    ticket = file_ticket(sessions, draft(description="电\x00费", facts={"k": "v\x00"}, transcript=said), NOW).ticket
    assert (ticket.description, ticket.facts) == ("电费", {"k": "v"})
    assert ticket_transcript(sessions, ticket.number)[0].text == "停电"


@pytest.mark.parametrize(
    "changes",
    [{"category": "weather"}, {"request_type": "praise"}, {"conversation_id": ""}, {"subject": "A|B"},
     {"account_number": "123"}, {"transcript": [TranscriptLine("robot", "hi")]}],
)
def test_bad_drafts_are_refused(sessions, changes):
    with pytest.raises(InvalidDraft):
        file_ticket(sessions, draft(**changes), NOW)


# --- who may see a ticket ----------------------------------------------------------------


def test_ticket_for_customer(sessions):
    account = new_account()
    filed = draft(account_number=account)
    number = file_ticket(sessions, filed, NOW).ticket.number
    assert ticket_for_customer(sessions, number, filed.conversation_id, None).number == number
    assert ticket_for_customer(sessions, number.lower(), filed.conversation_id, None).number == number
    assert ticket_for_customer(sessions, number, "another-conversation", account).number == number
    assert ticket_for_customer(sessions, number, "another-conversation", None) is None
    assert ticket_for_customer(sessions, number, "another-conversation", new_account()) is None
    assert ticket_for_customer(sessions, "GD209901010001", filed.conversation_id, account) is None


def test_open_tickets_newest_first(sessions):
    account = new_account()
    older = file_ticket(sessions, draft(account_number=account), NOW).ticket
    newer = file_ticket(sessions, draft(account_number=account, category="metering"), NOW + timedelta(hours=1)).ticket
    done = file_ticket(sessions, draft(account_number=account, category="outage"), NOW).ticket
    change_status(sessions, done.number, "resolved", "agent:wang", NOW)
    assert [t.number for t in open_tickets(sessions, account)] == [newer.number, older.number]


def test_tickets_db_uses_the_configured_database(monkeypatch, sqlite_url):
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    number = file_ticket(tickets_db(), draft(), NOW).ticket.number
    assert find_ticket(session_factory(sqlite_url), number) is not None


# --- schema -----------------------------------------------------------------------------


def test_migrations_match_the_models(database_url):
    with engine_for(database_url).connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_key_account_defaults_to_false(utility):
    assert utility.account("3201000001").key_account is False


def test_migration_goes_down_and_up_again(empty_database_url):
    config = alembic_config(empty_database_url)
    command.downgrade(config, "0002")
    assert "tickets" not in inspect(engine_for(empty_database_url)).get_table_names()
    upgrade(empty_database_url)
    with engine_for(empty_database_url).connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
