"""The console as a real server: `python -m bot console serve` on a free loopback port,
on the session's migrated databases (tests/conftest.py), talked to with `requests`.
A stand-in for the Rasa server's HTTP API (switchable up or down) receives what the
console's replies, hand-backs and resolutions trigger."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest
import requests

from bot import clock
from bot.console import staff
from bot.db import session_factory
from bot.handoff import service
from bot.tickets.service import file_ticket
from tests.e2e.servers import PROJECT, VENV_BIN, free_port
from tests.ticket_drafts import draft

PASSWORD = "correct-horse-battery"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')


class FakeRasa:
    """Answers the Rasa HTTP API's trigger_intent like a healthy server (200), or, when
    `up` is False, like one in trouble (503); remembers what it was asked. Healthy, it
    does what action_agent_reply does on the database: the agent's lines are delivered
    (tests/e2e runs the real Rasa and action servers)."""

    def __init__(self, database_url: str) -> None:
        self.up = True
        sessions = session_factory(database_url)
        self.calls: list[tuple[str, dict]] = []
        rasa = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                path = self.path.split("?")[0]
                rasa.calls.append((path, body))
                status, reply = (200, b"{}") if rasa.up else (503, b'{"error": "down"}')
                if rasa.up and body.get("name") == "EXTERNAL_agent_reply":
                    conversation = unquote(path.split("/")[2])
                    for message in service.undelivered(sessions, conversation):
                        service.delivered(sessions, message.id, clock.now())
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def intents(self) -> list[str]:
        return [body.get("name") for _path, body in self.calls]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Console:
    url: str
    database_url: str
    process: subprocess.Popen
    log_path: Path
    rasa: FakeRasa
    _log: object = field(repr=False, default=None)

    @property
    def sessions(self):
        return session_factory(self.database_url)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    # -- people --------------------------------------------------------------------

    def user(self, role: str, display_name: str | None = None) -> staff.StaffUser:
        """A new staff account of its own (password PASSWORD)."""
        name = f"{role[:5]}{uuid.uuid4().hex[:8]}"
        return staff.create_user(self.sessions, name, display_name or f"测试{role}", role, PASSWORD, clock.now())

    def signed_in(self, role: str, display_name: str | None = None) -> Browser:
        user = self.user(role, display_name)
        browser = Browser(self.url, user)
        response = browser.login(user.username, PASSWORD)
        assert response.status_code == 303, response.text[:500]
        return browser

    # -- tickets -------------------------------------------------------------------

    def ticket(self, **changes) -> str:
        return file_ticket(self.sessions, draft(**changes), clock.now()).ticket.number

    def handed_over(self, **changes) -> tuple[str, str]:
        """A ticket whose conversation waits for an agent: (number, conversation id)."""
        conversation = f"console-{uuid.uuid4().hex[:10]}"
        number = self.ticket(subject="handoff", request_type="enquiry", conversation_id=conversation, **changes)
        service.start(self.sessions, number, conversation, "socketio", "request_human", clock.now())
        return number, conversation


class Browser:
    """A person's browser: a `requests` session holding the console's cookies."""

    def __init__(self, url: str, user: staff.StaffUser | None = None) -> None:
        self.url = url
        self.user = user
        self.http = requests.Session()
        self.csrf = ""

    def get(self, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("allow_redirects", False)
        kwargs.setdefault("timeout", 30)
        return self.http.get(self.url + path, **kwargs)

    def post(self, path: str, data: dict | None = None, *, csrf: str | None = None, **kwargs) -> requests.Response:
        """A form post carrying the session's CSRF token (or `csrf`, "" for none)."""
        form = dict(data or {})
        token = self.csrf if csrf is None else csrf
        if token:
            form["csrf_token"] = token
        kwargs.setdefault("allow_redirects", False)
        kwargs.setdefault("timeout", 30)
        return self.http.post(self.url + path, data=form, **kwargs)

    def post_json(self, path: str, body: dict | None = None, *, csrf: str | None = None) -> requests.Response:
        """What the pages' scripts send: JSON, the token in X-CSRF-Token."""
        headers = {"Accept": "application/json"}
        token = self.csrf if csrf is None else csrf
        if token:
            headers["X-CSRF-Token"] = token
        return self.http.post(self.url + path, json=body or {}, headers=headers, allow_redirects=False, timeout=30)

    def login(self, username: str, password: str) -> requests.Response:
        page = self.get("/login")
        token = CSRF_FIELD.search(page.text)[1]
        response = self.http.post(
            self.url + "/login",
            data={"username": username, "password": password, "csrf_token": token},
            allow_redirects=False,
            timeout=30,
        )
        if response.status_code == 303:
            home = self.get(response.headers["Location"])
            self.csrf = CSRF_META.search(home.text)[1]
        return response


def start_console(database_url: str, log_dir: Path, **env: str) -> Console:
    rasa = FakeRasa(database_url)
    port = free_port()
    log_path = log_dir / f"console-{port}.log"
    log = log_path.open("w", encoding="utf-8")
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "UTILITY_BACKEND": "sql",
        "CONSOLE_COOKIE_SECURE": "0",
        "CONSOLE_LOCKOUT_SECONDS": "3",
        "RASA_URL": rasa.url,
        "RASA_TIMEOUT_SECONDS": "3",
        **env,
    }
    process = subprocess.Popen(
        [str(VENV_BIN / "python"), "-m", "bot", "console", "serve", "--port", str(port)],
        cwd=PROJECT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    console = Console(f"http://127.0.0.1:{port}", database_url, process, log_path, rasa, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            console.stop()
            pytest.fail(f"the console exited with {process.returncode}:\n{console.log()}")
        try:
            if requests.get(console.url + "/login", timeout=2).status_code == 200:
                return console
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    console.stop()
    pytest.fail(f"the console did not answer within 60 s:\n{console.log()}")


@pytest.fixture(scope="session")
def console(sqlite_url: str, tmp_path_factory) -> Iterator[Console]:
    """One console on the session's SQLite database (lockout 3 s, HTTP cookies)."""
    server = start_console(sqlite_url, tmp_path_factory.mktemp("console"))
    yield server
    server.stop()
    server.rasa.close()


@pytest.fixture(scope="session")
def any_console(database_url: str, tmp_path_factory) -> Iterator[Console]:
    """A console on SQLite, then one on PostgreSQL (tests/conftest.py's database_url)."""
    server = start_console(database_url, tmp_path_factory.mktemp("console"))
    yield server
    server.stop()
    server.rasa.close()
