"""The analytics consumer (bot/analytics) against the real RabbitMQ on 127.0.0.1:5672 and the
real databases (tests/conftest.py): events published by Rasa's own PikaEventBroker, as the
Rasa server publishes them, counted once into the analytics tables, and read back through
bot.reports and the console as the dashboard reads them.

Each test has a queue and a fanout exchange of its own (deleted afterwards), so no Rasa
server running on this machine publishes into them, and none of ours reach its queues; and
its events fall on days of 2004 no other test uses, so the counts are exact on the shared
session databases."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import logging
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from rasa.core.brokers.pika import RABBITMQ_EXCHANGE
from sqlalchemy import event, func, inspect, select, text
from sqlalchemy.engine import make_url

import bot.console.models  # every table of the schema, for the migration's comparison
import bot.training.models
import bot.wechat.models  # noqa: F401
from bot import clock, reports
from bot.analytics import bookkeeping
from bot.analytics.consumer import Consumer, Tally
from bot.analytics.models import CountedEventRow
from bot.config import load_settings
from bot.console.dashboard import FIGURES, NO_FALLBACK_FIGURE
from bot.db import Base, engine_for, session_factory
from bot.handoff.service import record_conversation
from bot.reports import Period
from bot.schema import alembic_config, upgrade
from bot.tickets.service import file_ticket
from tests.console.conftest import start_console
from tests.event_stream import (
    RABBITMQ_PORT,
    RABBITMQ_URL,
    Conversation,
    Rabbit,
    day_figures,
    facts,
    open_rabbit,
    wait_for,
)
from tests.ticket_drafts import draft

ANALYTICS_TABLES = {"analytics_events", "analytics_conversations", "analytics_days"}


@pytest.fixture
def rabbit() -> Iterator[Rabbit]:
    broker = open_rabbit()
    yield broker
    broker.close()


class Cuttable:
    """A TCP forwarder to a real server that can be cut: its connections are closed and new
    ones are closed at once until it is mended (the server going away, for its clients)."""

    def __init__(self, port: int) -> None:
        self.upstream = ("127.0.0.1", port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _address = self.listener.accept()
            except OSError:
                return  # closed
            # checked and registered under the lock: a connection accepted while cut() runs
            # is either closed by it or refused here, never left pumping through a cut proxy
            with self._lock:
                if not self.up:
                    client.close()
                    continue
                server = socket.create_connection(self.upstream)
                self._open |= {client, server}
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self._lock:
            self.up = False
            connections, self._open = self._open, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def mend(self) -> None:
        with self._lock:
            self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


def handoff_ticket(sessions, conversation: Conversation, at: datetime) -> str:
    changes = {"subject": "handoff", "request_type": "enquiry", "category": "service_channel"}
    return file_ticket(sessions, draft(conversation_id=conversation.sender, **changes), at).ticket.number


def test_containment_and_fallbacks_are_counted_from_the_event_stream(database_url, rabbit, monkeypatch):
    sessions = session_factory(database_url)
    day = date(2004, 5, 3)
    nine = datetime.combine(day, time(9, 0))

    handed = Conversation(nine)
    number = handoff_ticket(sessions, handed, nine)
    handed.opened().says("转人工", "request_human").does("action_read_turn", "action_open_ticket")
    handed.sets("ticket_subject", "handoff").does("ticket_form", "action_file_ticket")
    # action_file_ticket clears the form's slots, the subject among them, then names the ticket
    handed.sets("ticket_subject", None).sets("filed_ticket", number).sets("handoff_ticket", number)
    handed.answers(f"已为您转人工，工单号 {number}").does("action_listen")
    handed.says("还在吗", "affirm").does("action_read_turn", "action_relay_to_agent", "action_listen")
    handed.agent_writes("您好，我是客服小王")

    puzzled = Conversation(nine + timedelta(hours=1), channel="wechat").opened()
    puzzled.says("啊啊啊", "nlu_fallback").does("action_fallback").answers("抱歉，我没听懂").does("action_listen")
    puzzled.says("查电费", "query_bill").does("action_fulfil_request").answers("您上月电费…").does("action_listen")
    puzzled.says("嗯嗯？", "nlu_fallback").does("action_fallback").answers("抱歉").does("action_listen")

    complained = Conversation(nine + timedelta(hours=2), channel="rest").opened()
    complaint = file_ticket(sessions, draft(conversation_id=complained.sender), nine).ticket.number
    complained.says("抄表员态度太差了，我要投诉", "complain").does("action_open_ticket")
    complained.sets("ticket_subject", "complaint").does("ticket_form", "action_file_ticket")
    complained.sets("ticket_subject", None).sets("filed_ticket", complaint).answers("已登记").does("action_listen")

    greeted = Conversation(nine + timedelta(hours=3)).opened().answers("您好，我是95598智能客服")  # nobody wrote

    late = Conversation(datetime.combine(day, time(23, 59))).opened()
    late.says("你好", "greet").answers("您好").does("action_listen")
    late.at(datetime.combine(day + timedelta(days=1), time(0, 1))).says("？？", "nlu_fallback")
    late.does("action_fallback")

    events = [e for c in (handed, puzzled, complained, greeted, late) for e in c.events]
    rabbit.publish(events)
    rabbit.wait_queued(len(events))
    # what can change a figure: 6 of the handed-over conversation's events (2 customer's
    # messages, the handoff ticket, the relay, 2 bot messages), 8 of the puzzled one's (3 messages,
    # 3 answers, 2 fallbacks), 3 of the complaint's (its ticket too), the greeting, 4 of the late
    # one's; the rest are not written
    assert rabbit.drain(rabbit.consumer(sessions)) == Tally(counted=22, ignored=len(events) - 22)
    assert rabbit.queued() == 0
    with sessions() as session:  # the days are this test's own
        written = select(func.count()).where(CountedEventRow.at.between(nine.date(), nine.date() + timedelta(days=2)))
        assert session.scalar(written) == 22

    row = facts(sessions, handed.sender)
    assert (row.channel, row.started_at) == ("socketio", handed.time_of("user", text="转人工"))
    assert (row.messages, row.relayed, row.fallbacks) == (2, 1, 0)  # the agent's reply is not the customer's
    assert row.handed_over_at == handed.time_of("slot", name="filed_ticket")
    assert row.last_message_at == handed.time_of("bot", text="您好，我是客服小王")
    row = facts(sessions, puzzled.sender)
    assert (row.channel, row.messages, row.relayed, row.fallbacks, row.handed_over_at) == ("wechat", 3, 0, 2, None)
    assert facts(sessions, complained.sender).handed_over_at is None  # a ticket, but not a handoff
    assert facts(sessions, greeted.sender) is None  # not a conversation until the customer writes
    row = facts(sessions, late.sender)
    assert (row.started_at.date(), row.messages, row.fallbacks) == (day, 2, 1)

    # messages: 转人工 还在吗 (relayed) | 啊啊啊 查电费 嗯嗯？ | the complaint | 你好; ？？ the day after
    assert day_figures(sessions, day) == (4, 1, 7, 1, 2)
    assert day_figures(sessions, day + timedelta(days=1)) == (0, 0, 1, 0, 1)

    monkeypatch.setenv("ANALYTICS_SOURCE", "events")
    period = Period(day, day + timedelta(days=1))
    containment = reports.containment(sessions, period)
    assert containment == [(day, 4, 1)] and containment[0].contained == 0.75
    assert reports.fallbacks(sessions, period) == [(day, 6, 2), (day + timedelta(days=1), 1, 1)]
    now = datetime(2004, 6, 1)
    assert FIGURES["fallbacks"].table(sessions, period, now) == [
        (day, 6, 2, "33.3%"),
        (day + timedelta(days=1), 1, 1, "100.0%"),
    ]
    chart = FIGURES["fallbacks"].chart(sessions, period, now)
    assert chart["datasets"][0]["data"] == [33.3, 100.0] and "note" not in chart
    assert FIGURES["containment"].table(sessions, period, now) == [(day, 4, 1, "75.0%")]


def test_a_redelivered_event_changes_nothing(database_url, rabbit):
    sessions = session_factory(database_url)
    day = date(2004, 7, 1)
    talk = Conversation(datetime.combine(day, time(10, 0)))
    talk.says("啥", "nlu_fallback").does("action_fallback").says("查电费", "query_bill").does("action_listen")
    rabbit.publish(talk.events)
    rabbit.wait_queued(len(talk.events))

    # a consumer counts the customer's first message, commits, and dies before its ack
    assert rabbit.take_without_ack(lambda body: bookkeeping.record(sessions, bookkeeping.parse(body)))
    assert facts(sessions, talk.sender).messages == 1
    rabbit.wait_queued(len(talk.events))  # RabbitMQ gives it back to the queue
    # and Rasa publishes one event again (its broker keeps what it could not confirm)
    rabbit.publish(talk.events[1:2])
    rabbit.wait_queued(len(talk.events) + 1)

    # the fallback and the second message new, action_listen no figure's business
    assert rabbit.drain(rabbit.consumer(sessions)) == Tally(counted=2, repeated=2, ignored=1)
    row = facts(sessions, talk.sender)
    assert (row.messages, row.fallbacks) == (2, 1)
    assert day_figures(sessions, day) == (1, 0, 2, 0, 1)

    rabbit.publish(talk.events)  # the whole conversation once more: nothing changes
    rabbit.wait_queued(len(talk.events))
    assert rabbit.drain(rabbit.consumer(sessions)) == Tally(repeated=3, ignored=1)
    assert day_figures(sessions, day) == (1, 0, 2, 0, 1)


def test_keys_counted_long_ago_are_forgotten_and_a_recent_redelivery_still_changes_nothing(database_url, rabbit):
    sessions = session_factory(database_url)
    day = date(2004, 8, 1)
    old, recent = (Conversation(datetime.combine(day, time(hour, 0))).says("查电费", "query_bill") for hour in (9, 10))
    rabbit.publish(old.events + recent.events)
    rabbit.wait_queued(2)
    assert rabbit.drain(rabbit.consumer(sessions)) == Tally(counted=2)
    keys = [bookkeeping.parse(json.dumps(talk.events[0]).encode()).key for talk in (old, recent)]
    with sessions.begin() as session:  # the first counted three days ago
        session.get(CountedEventRow, keys[0]).counted_at = clock.now() - timedelta(days=3)

    consumer = rabbit.consumer(sessions)  # ANALYTICS_KEEP_KEYS_HOURS: two days
    assert consumer.keep_keys == timedelta(hours=48)
    rabbit.publish(recent.events)  # RabbitMQ delivers the recent one again
    rabbit.wait_queued(1)
    assert rabbit.drain(consumer) == Tally(repeated=1)  # and the drain forgets at its end

    with sessions() as session:
        assert session.get(CountedEventRow, keys[0]) is None
        assert session.get(CountedEventRow, keys[1]) is not None
    assert day_figures(sessions, day) == (2, 0, 2, 0, 0)  # the figures keep what was counted


def test_forgetting_goes_a_batch_a_transaction_and_a_database_away_only_postpones_it(sqlite_url, caplog):
    sessions = session_factory(sqlite_url)
    long_ago = clock.now() - timedelta(days=30)
    with sessions.begin() as session:
        session.add_all(
            CountedEventRow(key=f"{n:064x}", at=long_ago, counted_at=long_ago + timedelta(minutes=n)) for n in range(7)
        )
    commits: list[int] = []
    event.listen(sessions.kw["bind"], "commit", lambda _connection: commits.append(1))

    assert bookkeeping.forget_counted(sessions, long_ago + timedelta(minutes=5), batch=2) == 5
    assert len(commits) == 3  # 2 + 2 + 1
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(CountedEventRow)) == 2

    away = Consumer(session_factory("sqlite:////nonexistent/directory/bot.db"), RABBITMQ_URL, "q", "x")
    with caplog.at_level(logging.WARNING, logger="bot.analytics.consumer"):
        assert asyncio.run(away.forget()) == 0
    assert "could not forget old event keys (OperationalError" in caplog.text


def test_a_malformed_message_is_rejected_and_the_next_one_counted(database_url, rabbit, caplog):
    sessions = session_factory(database_url)
    talk = Conversation(datetime(2004, 8, 1, 10, 0)).says("你好", "greet")
    rabbit.publish_raw("不是JSON，我的电话13912345678".encode())
    rabbit.publish_raw(json.dumps(["a", "list"]).encode())
    rabbit.publish_raw(json.dumps({"event": "user", "timestamp": 1.0e9, "text": "户号3201000001"}).encode())
    rabbit.publish_raw(json.dumps({"sender_id": "x", "event": "user", "timestamp": "yesterday"}).encode())
    rabbit.publish_raw(b"\xff\xfe not UTF-8")
    rabbit.publish(talk.events)
    rabbit.wait_queued(6)

    with caplog.at_level(logging.WARNING, logger="bot.analytics.consumer"):
        assert rabbit.drain(rabbit.consumer(sessions)) == Tally(counted=1, rejected=5)
    assert rabbit.queued() == 0  # rejected without requeue: not handed out again
    assert facts(sessions, talk.sender).messages == 1
    assert caplog.text.count("rejected a message that is not a Rasa event") == 5
    assert "no usable sender_id" in caplog.text and "no usable timestamp" in caplog.text
    assert "13912345678" not in caplog.text and "3201000001" not in caplog.text  # masked
    assert "<手机号>" in caplog.text and "<户号>" in caplog.text


def test_without_the_event_stream_the_dashboard_keeps_its_figures(database_url, rabbit, monkeypatch):
    monkeypatch.delenv("ANALYTICS_SOURCE", raising=False)
    sessions = session_factory(database_url)
    day = date(2004, 6, 1)
    at = datetime.combine(day, time(10, 0))
    # the embedded default: the action server counts the conversations, a ticket tells the handoff
    handed, contained = f"embedded-{uuid.uuid4().hex[:8]}", f"embedded-{uuid.uuid4().hex[:8]}"
    for conversation in (handed, contained):
        record_conversation(sessions, conversation, "rest", at)
    file_ticket(sessions, draft(subject="handoff", request_type="enquiry", conversation_id=handed), at)
    # the same day as the event stream saw it (a consumer ran once): not what the default reads
    talk = Conversation(at).says("啊？", "nlu_fallback").does("action_fallback")
    rabbit.publish(talk.events)
    rabbit.wait_queued(len(talk.events))
    rabbit.drain(rabbit.consumer(sessions))

    period, now = Period(day, day), datetime(2004, 7, 1)
    assert reports.containment(sessions, period) == [(day, 2, 1)]
    assert reports.fallbacks(sessions, period) is None
    assert FIGURES["fallbacks"].table(sessions, period, now) == []
    chart = FIGURES["fallbacks"].chart(sessions, period, now)
    assert chart["note"] == NO_FALLBACK_FIGURE and chart["datasets"][0]["data"] == [None]

    monkeypatch.setenv("ANALYTICS_SOURCE", "events")
    assert reports.containment(sessions, period) == [(day, 1, 0)]
    assert reports.fallbacks(sessions, period) == [(day, 1, 1)]


def test_a_backlog_is_counted_in_batches_and_a_bad_message_among_them_costs_only_itself(database_url, rabbit):
    sessions = session_factory(database_url)
    talks = [Conversation(datetime(2004, 10, 1, 9 + n, 0)).says("你好", "greet").says("查电费", "query_bill")
             .does("action_listen") for n in range(10)]  # fmt: skip
    for n, talk in enumerate(talks):  # a backlog, as after the consumer was away
        rabbit.publish(talk.events)
        if n == 6:
            rabbit.publish_raw(b"{broken")
    rabbit.publish(talks[0].events[:1])  # and one event Rasa published twice
    total = sum(len(talk.events) for talk in talks) + 2
    rabbit.wait_queued(total)
    commits: list[int] = []
    event.listen(sessions.kw["bind"], "commit", lambda _connection: commits.append(1))

    consumer = rabbit.consumer(sessions)
    with rabbit.consuming(consumer):
        wait_for(lambda: sum(vars(consumer.tally).values()) == total, "the backlog counted")
    assert consumer.tally == Tally(counted=2 * len(talks), repeated=1, rejected=1, ignored=len(talks))
    assert [facts(sessions, talk.sender).messages for talk in talks] == [2] * len(talks)
    assert len(commits) < total - 2  # not a transaction per event
    assert rabbit.queued() == 0


def test_the_consumer_carries_on_when_rabbitmq_goes_away(sqlite_url, rabbit, caplog):
    sessions = session_factory(sqlite_url)
    proxy = Cuttable(RABBITMQ_PORT)
    consumer = rabbit.consumer(sessions, f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F")
    before = Conversation(datetime(2004, 9, 1, 10, 0)).says("你好", "greet")
    meanwhile = Conversation(datetime(2004, 9, 1, 11, 0)).says("查电费", "query_bill")
    caplog.set_level(logging.INFO, logger="bot.analytics.consumer")
    try:
        with rabbit.consuming(consumer):
            rabbit.publish_raw(b"{broken")  # a malformed message does not stop the consumer
            rabbit.publish(before.events)
            wait_for(lambda: facts(sessions, before.sender), "the first message counted")
            proxy.cut()
            wait_for(lambda: "RabbitMQ closed the channel" in caplog.text, "the consumer noticing")
            rabbit.publish(meanwhile.events)  # kept in the durable queue while nobody reads it
            rabbit.wait_queued(1)
            refused = f"RabbitMQ at amqp://guest:******@127.0.0.1:{proxy.port}/%2F"  # the password not logged
            wait_for(lambda: caplog.text.count(refused) >= 2, "two reconnections refused")
            assert facts(sessions, meanwhile.sender) is None
            proxy.mend()
            wait_for(lambda: facts(sessions, meanwhile.sender), "the message sent meanwhile counted")
    finally:
        proxy.close()
    assert consumer.tally == Tally(counted=2, rejected=1)
    assert "connected to RabbitMQ again" in caplog.text
    assert "guest:guest@" not in caplog.text


def test_the_consumer_waits_for_postgresql_and_counts_once(database_url, rabbit, caplog):
    if not database_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL server going away; the SQLite file does not")
    proxy = Cuttable(make_url(database_url).port or 5432)
    proxied = make_url(database_url).set(port=proxy.port).render_as_string(hide_password=False)
    direct = session_factory(database_url)
    consumer = rabbit.consumer(session_factory(proxied))
    day = date(2004, 9, 15)
    talk = Conversation(datetime.combine(day, time(10, 0))).says("啊？", "nlu_fallback").does("action_fallback")
    caplog.set_level(logging.INFO, logger="bot.analytics.consumer")
    try:
        with rabbit.consuming(consumer):
            proxy.cut()
            rabbit.publish(talk.events)
            wait_for(lambda: caplog.text.count("database unavailable") >= 2, "two attempts on a dead database")
            assert facts(direct, talk.sender) is None
            proxy.mend()
            wait_for(lambda: consumer.tally.counted == len(talk.events), "the events counted")
            assert "the database answers again" in caplog.text
    finally:
        proxy.close()
    assert consumer.tally == Tally(counted=len(talk.events))
    row = facts(direct, talk.sender)
    assert (row.messages, row.fallbacks) == (1, 1)
    assert day_figures(direct, day) == (1, 0, 1, 0, 1)
    assert rabbit.queued() == 0


def test_the_console_draws_the_figures_from_the_event_stream(sqlite_url, rabbit, tmp_path):
    sessions = session_factory(sqlite_url)
    talk = Conversation(datetime(2004, 10, 1, 10, 0)).says("啊？", "nlu_fallback").does("action_fallback")
    talk.answers("抱歉，我没听懂").says("查电费", "query_bill").does("action_fulfil_request")
    rabbit.publish(talk.events)
    rabbit.wait_queued(len(talk.events))
    rabbit.drain(rabbit.consumer(sessions))

    console = start_console(sqlite_url, tmp_path, ANALYTICS_SOURCE="events")
    try:
        supervisor = console.signed_in("supervisor")
        query = "?start=2004-10-01&end=2004-10-02"
        chart = supervisor.get(f"/api/dashboard/fallbacks{query}").json()
        assert chart["datasets"][0]["data"] == [50.0, None] and "note" not in chart
        assert _csv(supervisor.get(f"/dashboard/fallbacks.csv{query}").content) == [
            ["日期", "机器人应答的客户消息数", "兜底次数", "兜底率"],
            ["2004-10-01", "2", "1", "50.0%"],
        ]
        assert _csv(supervisor.get(f"/dashboard/containment.csv{query}").content)[1:] == [
            ["2004-10-01", "1", "0", "100.0%"]
        ]
    finally:
        console.stop()
        console.rasa.close()


def _csv(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def test_the_defaults_meet_rasas_broker(monkeypatch):
    for name in ("RABBITMQ_URL", "RASA_EVENTS_QUEUE", "RASA_EVENTS_EXCHANGE", "ANALYTICS_SOURCE"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.rasa_events_exchange == RABBITMQ_EXCHANGE  # where Rasa's PikaEventBroker publishes
    assert (settings.rabbitmq_url, settings.rasa_events_queue) == (RABBITMQ_URL, "rasa_events")
    assert settings.analytics_source == "database"  # the embedded default reads what it always read


def test_the_analytics_migration_goes_down_and_up_again(empty_database_url):
    command.downgrade(alembic_config(empty_database_url), "0007")
    assert not ANALYTICS_TABLES & set(inspect(engine_for(empty_database_url)).get_table_names())
    upgrade(empty_database_url)
    assert set(inspect(engine_for(empty_database_url)).get_table_names()) >= ANALYTICS_TABLES
    with engine_for(empty_database_url).connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_keys_counted_before_the_forgetting_existed_are_kept_as_if_counted_at_the_upgrade(empty_database_url):
    command.downgrade(alembic_config(empty_database_url), "0010")
    with engine_for(empty_database_url).begin() as connection:
        connection.execute(text("INSERT INTO analytics_events (key, at) VALUES ('k', '2004-08-01 09:00:00')"))
    before = clock.now()
    upgrade(empty_database_url)
    with session_factory(empty_database_url)() as session:
        row = session.get(CountedEventRow, "k")
    assert row.at == datetime(2004, 8, 1, 9) and before <= row.counted_at <= clock.now()
