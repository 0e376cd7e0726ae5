"""Forwarding tickets to the helpdesk: a real HTTP server on loopback that fails the way
company systems do, and the worker (`python -m bot outbox run`) as a real process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bot import clock
from bot.db import session_factory
from bot.tickets.outbox import DeliveryReport, deliver_due, outbox_entries
from bot.tickets.records import Draft, TranscriptLine
from bot.tickets.service import file_ticket, find_ticket, ticket_events
from tests.e2e.servers import PROJECT, VENV_BIN, running
from tests.ticket_drafts import NOW, draft

CLIENT_TIMEOUT = 0.5


@dataclass
class Helpdesk:
    """What the helpdesk saw: every request's Idempotency-Key, and the tickets it kept (by key)."""

    url: str = ""
    keys: list[str] = field(default_factory=list)
    kept: dict[str, dict] = field(default_factory=dict)


# how the helpdesk answers its n-th request (1-based): "ok", "503", "close", "slow", "lost" (keeps it, answers 500)
Script = Callable[[int], str]


@contextmanager
def helpdesk(script: Script) -> Iterator[Helpdesk]:
    seen = Helpdesk()
    lock = threading.Lock()
    released = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            key = self.headers["Idempotency-Key"]
            with lock:
                seen.keys.append(key)
                behaviour = script(len(seen.keys))
                if behaviour in ("ok", "lost"):
                    seen.kept.setdefault(key, json.loads(body))  # a repeat of a known key is not kept twice
            if behaviour == "close":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if behaviour == "slow":
                released.wait(CLIENT_TIMEOUT * 4)
            status = {"ok": 201, "503": 503, "lost": 500, "slow": 201}[behaviour]
            try:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass  # the client stopped waiting

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    try:
        with running(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as url:
            seen.url = url + "/tickets"
            yield seen
    finally:
        released.set()


@pytest.fixture
def forwarding(monkeypatch):
    """Filing with a helpdesk configured (the URL only decides whether the outbox is written)."""
    monkeypatch.setenv("HELPDESK_URL", "http://127.0.0.1:9/unused")


def complaint(**changes) -> Draft:
    """王强's overdue reconnection, with every field the helpdesk receives filled."""
    values = {
        "subject": "reconnection_overdue",
        "category": "meter_reading_collection",
        "channel": "wechat",
        "conversation_id": f"outbox-{uuid.uuid4().hex}",
        "description": "昨天交了电费，到现在还没来电",
        "account_number": "3201000003",
        "callback_phone": "13800000003",
        "place": "光明路46号",
        "preferred_time": "今天下午",
        "facts": {"paid_at": "2026-11-23T09:00:00"},
        "transcript": [TranscriptLine("customer", "我是王强，电话13800000003", NOW)],
    }
    return draft(**{**values, **changes})


def test_no_outbox_without_a_helpdesk(empty_database_url, monkeypatch):
    monkeypatch.delenv("HELPDESK_URL", raising=False)
    sessions = session_factory(empty_database_url)
    ticket = file_ticket(sessions, complaint(), NOW).ticket
    assert outbox_entries(sessions, ticket.number) == []


def test_delivered_once_after_a_503_a_dropped_connection_and_a_timeout(empty_database_url, forwarding):
    sessions = session_factory(empty_database_url)
    with helpdesk(lambda n: {1: "503", 2: "close", 3: "slow"}.get(n, "ok")) as desk:
        ticket = file_ticket(sessions, complaint(), NOW).ticket
        # the ticket is committed and findable before anything is sent
        assert find_ticket(session_factory(empty_database_url), ticket.number) is not None
        assert desk.keys == []
        [pending] = outbox_entries(sessions, ticket.number)
        assert (pending.attempts, pending.delivered_at) == (0, None)

        def deliver(seconds: float) -> DeliveryReport:
            return deliver_due(sessions, desk.url, NOW + timedelta(seconds=seconds), timeout=CLIENT_TIMEOUT)

        assert deliver(0) == DeliveryReport(sent=0, failed=1)  # 503
        assert outbox_entries(sessions, ticket.number)[0].last_error == "HTTP 503"
        assert deliver(1) == DeliveryReport(0, 0)  # not due again before 2 s
        assert deliver(2) == DeliveryReport(0, 1)  # connection closed
        assert "ConnectionError" in outbox_entries(sessions, ticket.number)[0].last_error
        assert deliver(5) == DeliveryReport(0, 0)  # next at 2 + 4 s
        assert deliver(6) == DeliveryReport(0, 1)  # too slow
        assert "Timeout" in outbox_entries(sessions, ticket.number)[0].last_error
        assert deliver(14) == DeliveryReport(1, 0)  # 6 + 8 s
        assert deliver(400) == DeliveryReport(0, 0)

    key = f"{ticket.number}:filed"
    assert desk.keys == [key] * 4
    assert list(desk.kept) == [key]
    body = desk.kept[key]
    assert body["number"] == ticket.number
    assert (body["request_type"], body["category"], body["priority"], body["status"]) == (
        "complaint",
        "meter_reading_collection",
        "urgent",
        "new",
    )
    assert body["sla_due_at"] == (NOW + timedelta(minutes=45)).isoformat()
    assert body["created_at"] == NOW.isoformat()
    assert (body["account_number"], body["callback_phone"], body["place"], body["preferred_time"]) == (
        "3201000003",
        "13800000003",
        "光明路46号",
        "今天下午",
    )
    assert body["description"] == "昨天交了电费，到现在还没来电"
    assert body["facts"] == {"paid_at": "2026-11-23T09:00:00"}
    assert body["transcript"][0]["text"] == "我是王强，电话138****0003"
    [entry] = outbox_entries(sessions, ticket.number)
    assert (entry.attempts, entry.delivered_at, entry.last_error) == (4, NOW + timedelta(seconds=14), None)
    forwarded = [e for e in ticket_events(sessions, ticket.number) if e.kind == "forwarded"]
    assert [(e.actor, e.detail["status"]) for e in forwarded] == [("system", 201)]


def test_a_lost_answer_is_retried_with_the_same_key(empty_database_url, forwarding):
    sessions = session_factory(empty_database_url)
    with helpdesk(lambda n: "lost" if n == 1 else "ok") as desk:
        ticket = file_ticket(sessions, complaint(), NOW).ticket
        assert deliver_due(sessions, desk.url, NOW, timeout=CLIENT_TIMEOUT) == DeliveryReport(0, 1)
        assert deliver_due(sessions, desk.url, NOW + timedelta(seconds=2), timeout=CLIENT_TIMEOUT).sent == 1
    assert desk.keys == [f"{ticket.number}:filed"] * 2
    assert len(set(desk.keys)) == len(desk.kept) == 1  # the helpdesk could tell it was a repeat


def test_a_helpdesk_that_is_down_loses_nothing(empty_database_url, forwarding):
    sessions = session_factory(empty_database_url)
    tickets = [file_ticket(sessions, complaint(), NOW).ticket for _ in range(3)]
    with socket.socket() as bound_not_listening:
        bound_not_listening.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{bound_not_listening.getsockname()[1]}/tickets"
        reports = [deliver_due(sessions, url, NOW + timedelta(seconds=s), timeout=CLIENT_TIMEOUT) for s in (0, 2, 6)]
    assert reports == [DeliveryReport(0, 3)] * 3
    for ticket in tickets:
        [entry] = outbox_entries(sessions, ticket.number)
        assert (entry.attempts, entry.delivered_at, entry.next_attempt_at) == (3, None, NOW + timedelta(seconds=14))
        assert "ConnectionError" in entry.last_error
    with helpdesk(lambda n: "ok") as desk:
        assert deliver_due(sessions, desk.url, NOW + timedelta(seconds=14)) == DeliveryReport(3, 0)
    assert sorted(desk.kept) == sorted(f"{t.number}:filed" for t in tickets)


def test_backoff_is_capped_at_five_minutes(empty_database_url, forwarding):
    sessions = session_factory(empty_database_url)
    ticket = file_ticket(sessions, complaint(), NOW).ticket
    delays = []
    with helpdesk(lambda n: "503") as desk:
        at = NOW
        for _ in range(10):
            deliver_due(sessions, desk.url, at, timeout=CLIENT_TIMEOUT)
            after = outbox_entries(sessions, ticket.number)[0].next_attempt_at
            delays.append((after - at).total_seconds())
            at = after
    assert delays == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    [entry] = outbox_entries(sessions, ticket.number)
    assert entry.attempts == 10 and entry.delivered_at is None
    assert len(desk.keys) == 10


def _worker(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "python"), "-m", "bot", "outbox", "run", "--once"],
        cwd=PROJECT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_worker_forwards_what_is_due(empty_database_url, forwarding):
    sessions = session_factory(empty_database_url)
    ticket = file_ticket(sessions, complaint(), clock.now() - timedelta(minutes=1)).ticket
    with helpdesk(lambda n: "ok") as desk:
        done = _worker({"DATABASE_URL": empty_database_url, "HELPDESK_URL": desk.url})
    assert done.returncode == 0, done.stderr
    assert list(desk.kept) == [f"{ticket.number}:filed"]
    assert outbox_entries(sessions, ticket.number)[0].delivered_at is not None


def test_worker_logs_failures_and_keeps_the_message(empty_database_url, forwarding):
    sessions = session_factory(empty_database_url)
    ticket = file_ticket(sessions, complaint(), clock.now() - timedelta(minutes=1)).ticket
    with helpdesk(lambda n: "503") as desk:
        done = _worker({"DATABASE_URL": empty_database_url, "HELPDESK_URL": desk.url})
    assert done.returncode == 0
    assert f"ticket {ticket.number} not forwarded (attempt 1): HTTP 503" in done.stderr
    assert outbox_entries(sessions, ticket.number)[0].attempts == 1


def test_worker_without_a_helpdesk_says_so(sqlite_url):
    done = _worker({"DATABASE_URL": sqlite_url, "HELPDESK_URL": ""})
    assert done.returncode == 2
    assert "HELPDESK_URL" in done.stderr


def test_worker_runs_until_stopped(empty_database_url, forwarding):
    sessions = session_factory(empty_database_url)
    with helpdesk(lambda n: "ok") as desk:
        worker = subprocess.Popen(
            [str(VENV_BIN / "python"), "-m", "bot", "outbox", "run", "--interval", "0.2"],
            cwd=PROJECT,
            env={**os.environ, "DATABASE_URL": empty_database_url, "HELPDESK_URL": desk.url},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            ticket = file_ticket(sessions, complaint(), clock.now() - timedelta(seconds=1)).ticket
            deadline = time.monotonic() + 60
            while not desk.kept and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            worker.send_signal(signal.SIGINT)
            output = worker.communicate(timeout=30)[0]
    assert list(desk.kept) == [f"{ticket.number}:filed"], output
    assert worker.returncode == 0, output
