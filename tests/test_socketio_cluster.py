"""The website widget's socket.io channel on two Rasa servers (issue 8, scale-out).

Two real Rasa servers with the trained model share a SQL tracker store (a SQLite file); a
real socket.io client connects to server A over WebSocket only, as rasa-webchat does, and
words are said into its conversation through server B's HTTP API the way the console sends
an agent's reply (`bot.handoff.desk.trigger`, trigger_intent with output_channel=latest).
With the channel's Redis manager they reach the client on A; without it they do not. Redis
is a private redis-server on a free port, stopped and started again for the degraded mode.
One real action server serves both (it reads every turn, action_read_turn).

The servers' lock stores are their own (in memory): before B takes the conversation, the
test waits until A's turn is in the shared tracker store, which a shared lock store does in
production (a server sends its answer a moment before it saves the turn).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import socketio
import yaml

from bot.handoff import desk
from bot.schema import upgrade
from tests.e2e.servers import ACTION_SERVER_ENV, PROJECT, VENV_BIN, Process, free_port, start, wait_until_up

pytestmark = pytest.mark.e2e

ARTIFACTS = PROJECT / "tests" / "artifacts"
TOKEN = "socketio-cluster-token"
ANSWER_SECONDS = 60.0  # a bot answer on a busy two-core machine
START_SECONDS = 600.0  # two servers loading the model at once on two shared cores
_RESPONSES = yaml.safe_load((PROJECT / "domain.yml").read_text(encoding="utf-8"))["responses"]


def said(response: str) -> set[str]:
    """The texts of a response's variants in domain.yml."""
    return {variant["text"] for variant in _RESPONSES[response]}


GREETING, BOT_CHALLENGE, WELCOME, GOODBYE = (
    said("utter_greet"),
    said("utter_iamabot"),
    said("utter_youre_welcome"),
    said("utter_goodbye"),
)


@dataclass
class Cluster:
    a: Process
    b: Process
    a_url: str
    b_url: str


@pytest.fixture(scope="module")
def actions_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The action server, on a database of its own."""
    database_url = f"sqlite:///{tmp_path_factory.mktemp('actions') / 'bot.db'}"
    upgrade(database_url)
    port = free_port()
    env = {"DATABASE_URL": database_url, "RASA_TELEMETRY_ENABLED": "false", **ACTION_SERVER_ENV}
    actions = start("socketio-actions", [str(VENV_BIN / "rasa"), "run", "actions", "--port", str(port)], env, ARTIFACTS)
    try:
        wait_until_up(actions, f"http://127.0.0.1:{port}/health")
        yield f"http://127.0.0.1:{port}/webhook"
    finally:
        actions.stop()


@contextmanager
def two_rasa_servers(directory: Path, name: str, actions_url: str, redis_url: str) -> Iterator[Cluster]:
    """Rasa servers A and B with the project's model and endpoints, a SQL tracker store they
    share, and the channel as credentials.yml lists it, `redis_url` from REDIS_URL."""
    model = PROJECT / "models" / "current.tar.gz"
    if not model.exists():
        pytest.fail("no trained model in models/: run scripts/test.sh (it trains first) or scripts/train.sh")
    endpoints = (PROJECT / "endpoints.yml").read_text(encoding="utf-8")
    stores = "type: bot.tracker_store.ProcessTrackerStore"
    assert stores in endpoints and "http://127.0.0.1:5055/webhook" in endpoints
    endpoints = endpoints.replace(stores, f"type: SQL\n  dialect: sqlite\n  db: {directory / 'trackers.db'}")
    endpoints = endpoints.replace("http://127.0.0.1:5055/webhook", actions_url)
    (directory / "endpoints.yml").write_text(endpoints, encoding="utf-8")
    (directory / "credentials.yml").write_text(
        "bot.channels.socketio.SocketIOInput:\n"
        "  user_message_evt: user_uttered\n"
        "  bot_message_evt: bot_uttered\n"
        "  session_persistence: true\n"
        '  redis_url: "${REDIS_URL}"\n'
        f"  redis_channel: test-socketio-{directory.name}\n",
        encoding="utf-8",
    )
    env = {"REDIS_URL": redis_url, "RASA_TELEMETRY_ENABLED": "false"}
    ports = {"a": free_port(), "b": free_port()}
    servers = {
        server: start(
            f"socketio-{name}-{server}",
            [
                str(VENV_BIN / "rasa"), "run", "--port", str(port), "--interface", "127.0.0.1",
                "--model", str(model),
                "--endpoints", str(directory / "endpoints.yml"),
                "--credentials", str(directory / "credentials.yml"),
                "--enable-api", "--auth-token", TOKEN,
            ],
            env,
            ARTIFACTS,
        )
        for server, port in ports.items()
    }  # fmt: skip
    try:
        for server, port in ports.items():
            wait_until_up(servers[server], f"http://127.0.0.1:{port}/", START_SECONDS, "Hello from Rasa")
        yield Cluster(servers["a"], servers["b"], f"http://127.0.0.1:{ports['a']}", f"http://127.0.0.1:{ports['b']}")
    finally:
        for process in servers.values():
            process.stop()


class PrivateRedis:
    """A redis-server of the test's own on a free port, which it may stop and start again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: Process | None = None

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = start("socketio-redis", args, {}, ARTIFACTS)
        deadline = time.monotonic() + 30
        while "Ready to accept connections" not in self.process.log():
            assert time.monotonic() < deadline, f"redis-server not up:\n{self.process.log()}"
            assert self.process.popen.poll() is None, f"redis-server exited:\n{self.process.log()}"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


class Widget:
    """The customer's end, as rasa-webchat does it: WebSocket only, a session asked for and
    confirmed, messages carrying the session id; every text the bot sends is kept."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.texts: list[str] = []
        self.session_id = ""
        self._changed = asyncio.Condition()
        self.client.on("session_confirm", self._session_confirmed)
        self.client.on("bot_uttered", self._bot_uttered)

    async def open(self, url: str) -> None:
        await self.client.connect(url, transports=["websocket"], socketio_path="/socket.io")
        await self.client.emit("session_request", {"session_id": None})
        await self._until(lambda: bool(self.session_id), "no session_confirm")

    async def close(self) -> None:
        await self.client.disconnect()

    async def say(self, text: str) -> None:
        await self.client.emit("user_uttered", {"message": text, "session_id": self.session_id})

    async def wait_for(self, wanted: set[str]) -> str:
        """The first text among `wanted` that the widget received, waiting for it."""
        await self._until(lambda: bool(wanted & set(self.texts)), f"none of {wanted}")
        return next(text for text in self.texts if text in wanted)

    async def _until(self, condition: Callable[[], bool], missing: str) -> None:
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(condition), ANSWER_SECONDS)
            except asyncio.TimeoutError:
                raise AssertionError(f"{missing} within {ANSWER_SECONDS}s; the widget got {self.texts}") from None

    async def _session_confirmed(self, session_id: str) -> None:
        async with self._changed:
            self.session_id = session_id
            self._changed.notify_all()

    async def _bot_uttered(self, message: dict) -> None:
        async with self._changed:
            self.texts.append(message.get("text", ""))
            self._changed.notify_all()


Trigger = Callable[[str, str, str], Awaitable[None]]


@pytest.fixture
def through(monkeypatch: pytest.MonkeyPatch) -> Trigger:
    """Say `intent`'s answer in a conversation through a server's HTTP API, as the console
    sends an agent's reply (the console is configured with RASA_URL and RASA_TOKEN)."""
    monkeypatch.setenv("RASA_TOKEN", TOKEN)

    async def trigger(rasa_url: str, conversation_id: str, intent: str) -> None:
        monkeypatch.setenv("RASA_URL", rasa_url)
        await asyncio.to_thread(desk.trigger, conversation_id, intent)

    return trigger


def bot_texts(rasa_url: str, conversation_id: str) -> list[str]:
    """What the bot said in the conversation, as the server's tracker records it."""
    url = f"{rasa_url}/conversations/{conversation_id}/tracker?token={TOKEN}"
    with urllib.request.urlopen(url, timeout=30) as response:
        return [event.get("text") or "" for event in json.load(response)["events"] if event["event"] == "bot"]


async def stored(rasa_url: str, conversation_id: str, text: str) -> None:
    """Wait until the shared tracker store has the bot's `text` in the conversation."""
    deadline = time.monotonic() + ANSWER_SECONDS
    while text not in await asyncio.to_thread(bot_texts, rasa_url, conversation_id):
        assert time.monotonic() < deadline, f"{text!r} never saved in {conversation_id}"
        await asyncio.sleep(0.1)


async def logged(process: Process, line: str) -> None:
    """Wait until the server's log has `line`."""
    deadline = time.monotonic() + ANSWER_SECONDS
    while line not in process.log():
        assert time.monotonic() < deadline, f"{process.name} never logged {line!r}:\n{process.log()[-3000:]}"
        await asyncio.sleep(0.2)


class TestFannedOutThroughRedis:
    @pytest.fixture(scope="class")
    def redis(self) -> Iterator[PrivateRedis]:
        server = PrivateRedis()
        server.start()
        yield server
        server.stop()

    @pytest.fixture(scope="class")
    def cluster(
        self, redis: PrivateRedis, actions_url: str, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[Cluster]:
        with two_rasa_servers(tmp_path_factory.mktemp("redis"), "redis", actions_url, redis.url) as cluster:
            yield cluster

    def test_words_said_on_the_other_server_reach_the_widget(self, cluster: Cluster, through: Trigger) -> None:
        async def scenario() -> None:
            widget = Widget()
            await widget.open(cluster.a_url)
            try:
                await widget.say("你好")
                await stored(cluster.b_url, widget.session_id, await widget.wait_for(GREETING))
                await through(cluster.b_url, widget.session_id, "bot_challenge")
                await widget.wait_for(BOT_CHALLENGE)
                await widget.say("谢谢")
                await widget.wait_for(WELCOME)
            finally:
                await widget.close()
            # A's own answers go to its customer directly and are not delivered a second
            # time when they come back from Redis
            assert len(widget.texts) == 3 == len(set(widget.texts)), widget.texts

        asyncio.run(scenario())

    def test_redis_down_the_server_still_answers_its_own_customers(
        self, cluster: Cluster, redis: PrivateRedis, through: Trigger
    ) -> None:
        async def scenario() -> None:
            widget = Widget()
            await widget.open(cluster.a_url)
            try:
                await widget.say("你好")
                await widget.wait_for(GREETING)
                redis.stop()
                await logged(cluster.a, "messages said on the other servers do not reach this server's customers")

                await widget.say("谢谢")
                first_welcome = await widget.wait_for(WELCOME)
                await stored(cluster.b_url, widget.session_id, first_welcome)
                # said on B while Redis is down: lost for the widget on A, and B says so
                await through(cluster.b_url, widget.session_id, "goodbye")
                await logged(cluster.b, "'bot_uttered' for room " + widget.session_id + " reached this server's")
                assert set(bot_texts(cluster.b_url, widget.session_id)) & GOODBYE

                redis.start()
                await logged(cluster.a, "Redis is back")
                await through(cluster.b_url, widget.session_id, "thank")
                await widget.wait_for(WELCOME - {first_welcome})
            finally:
                await widget.close()
            assert not GOODBYE & set(widget.texts), widget.texts
            assert len(widget.texts) == 3 == len(set(widget.texts)), widget.texts
            assert cluster.a.log().count("until it is back") == 1  # the outage logged once, not each retry

        asyncio.run(scenario())


class TestWithoutRedis:
    @pytest.fixture(scope="class")
    def cluster(self, actions_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
        with two_rasa_servers(tmp_path_factory.mktemp("alone"), "alone", actions_url, "") as cluster:
            yield cluster

    def test_words_said_on_the_other_server_do_not_reach_the_widget(self, cluster: Cluster, through: Trigger) -> None:
        async def scenario() -> None:
            widget = Widget()
            await widget.open(cluster.a_url)
            try:
                await widget.say("你好")
                await stored(cluster.b_url, widget.session_id, await widget.wait_for(GREETING))
                await through(cluster.b_url, widget.session_id, "bot_challenge")
                assert set(bot_texts(cluster.b_url, widget.session_id)) & BOT_CHALLENGE  # B did say it
                # a turn on A after B answered: B's words, had they a way to A, came first
                await widget.say("谢谢")
                await widget.wait_for(WELCOME)
            finally:
                await widget.close()
            assert not BOT_CHALLENGE & set(widget.texts), widget.texts

        asyncio.run(scenario())
