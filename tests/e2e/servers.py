"""Real servers for end-to-end tests: the company API behind a switchable fault proxy,
the action server and the Rasa server, each a real process or thread on loopback."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
VENV_BIN = PROJECT / ".venv" / "bin"
# the action server as scripts/run.sh starts it: loopback only, and connections from the
# Rasa server kept open long enough that a busy Rasa server's action calls are not dropped
ACTION_SERVER_ENV = {"SANIC_HOST": "127.0.0.1", "SANIC_KEEP_ALIVE_TIMEOUT": "120"}


@contextmanager
def running(server: ThreadingHTTPServer) -> Iterator[str]:
    """Serve in a thread; the base URL while it runs."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FaultProxy:
    """Forwards GETs to the company API; `mode` makes it fail: "down" (503) or "slow"."""

    def __init__(self, upstream: str, slow_seconds: float = 4.0) -> None:
        self.mode = "pass"
        self.requests = 0
        self._released = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                proxy.requests += 1
                if proxy.mode == "down":
                    return self._reply(503, b'{"error": "maintenance"}')
                if proxy.mode == "slow":
                    proxy._released.wait(slow_seconds)
                try:
                    with urllib.request.urlopen(upstream + self.path, timeout=10) as response:
                        return self._reply(response.status, response.read())
                except urllib.error.HTTPError as error:
                    return self._reply(error.code, error.read())

            def _reply(self, status: int, body: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting, as it should

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._released.set()
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log_path: Path
    _log: object = field(repr=False, default=None)

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self._log:
            self._log.close()
        return self.popen.returncode

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def start(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> Process:
    log_path = log_dir / f"{name}.log"
    log = log_path.open("w", encoding="utf-8")
    popen = subprocess.Popen(
        args, cwd=PROJECT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
    )
    return Process(name, popen, log_path, log)


def wait_until_up(process: Process, url: str, timeout: float = 240.0, ready: str | None = None) -> None:
    """Poll `url` until it answers 200 (and its body contains `ready`, if given)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited early:\n{process.log()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                body = response.read().decode()
                if response.status == 200 and (ready is None or ready in body):
                    return
        except (urllib.error.URLError, OSError, http.client.HTTPException):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{process.name} not up after {timeout}s:\n{process.log()[-3000:]}")


class RestClient:
    """A customer on Rasa's REST channel."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def send(self, sender: str, text: str) -> list[str]:
        body = json.dumps({"sender": sender, "message": text}).encode()
        request = urllib.request.Request(
            self.base_url + "/webhooks/rest/webhook", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return [m.get("text", "") for m in json.load(response)]


class CallbackChannel:
    """The customer's end of Rasa's callback channel: what the bot (and the agents through
    it) sent to each conversation, with a way to wait for a message to arrive."""

    def __init__(self) -> None:
        self.messages: dict[str, list[dict]] = {}
        self._arrived = threading.Condition(threading.RLock())
        channel = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with channel._arrived:
                    channel.messages.setdefault(body.get("recipient_id", ""), []).append(body)
                    channel._arrived.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    def texts(self, recipient: str) -> list[str]:
        with self._arrived:
            return [m.get("text") or "" for m in self.messages.get(recipient, [])]

    def wait_for(self, recipient: str, predicate, timeout: float = 60.0) -> str:
        """The first text sent to `recipient` for which `predicate` holds, waiting for it."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                found = next((t for t in self.texts(recipient) if predicate(t)), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"nothing matching arrived for {recipient}: {self.texts(recipient)}")
                self._arrived.wait(left)


class CallbackCustomer:
    """A customer writing on the callback channel (answers arrive at the CallbackChannel)."""

    def __init__(self, rasa_url: str, channel: CallbackChannel, sender: str) -> None:
        self.rasa_url, self.channel, self.sender = rasa_url, channel, sender

    def say(self, text: str) -> None:
        body = json.dumps({"sender": self.sender, "message": text}).encode()
        request = urllib.request.Request(
            self.rasa_url + "/webhooks/callback/webhook", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 200

    def wait_for(self, predicate, timeout: float = 60.0) -> str:
        return self.channel.wait_for(self.sender, predicate, timeout)
