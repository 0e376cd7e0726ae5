"""The REST channel's message ids on two real Rasa servers (issue 8: a server killed
mid-turn, the client retrying on the other one).

Rasa servers A and B run the trained model with the channel as credentials.yml would list
it (bot.channels.rest.IdempotentRestInput), Rasa's SQL tracker store on a PostgreSQL
database of this module's own, the lock store of bot/lock_store.py and the message claims
on a private redis-server (tests/private_redis.py), the product's database on SQLite. One
action server serves both; it asks the company API (the reference server) through a fault
proxy, which makes a turn slow on demand (`proxy.mode = "slow"`: 4 s).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
import yaml

from bot import clock
from bot.db import session_factory
from bot.demo_data import ensure_demo_data
from bot.exactly_once import STILL_WORKING, message_key
from bot.schema import upgrade
from bot.utility.reference_api import make_server
from tests.e2e.servers import (
    ACTION_SERVER_ENV,
    PROJECT,
    VENV_BIN,
    FaultProxy,
    Process,
    free_port,
    running,
    start,
    wait_until_up,
)
from tests.private_redis import PrivateRedis

pytestmark = pytest.mark.e2e

ARTIFACTS = PROJECT / "tests" / "artifacts"
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TOKEN = "rest-channel-token"
START_SECONDS = 600.0  # two servers loading the model at once on two shared cores
CLAIM_SECONDS, WAIT_SECONDS, LOCK_LIFETIME = 3, 2, 6
SLOW_SECONDS = 4.0  # a turn that asks the company API while the proxy is slow
OUTAGE_QUESTION = "光明路那边停电了什么时候来电"  # the outage lookup asks the company API
OUTAGE_ANSWER = "确实停电"


@dataclass
class Delivery:
    status: int
    replies: list[dict]


@dataclass
class RasaServer:
    name: str
    port: int
    args: list[str]
    env: dict[str, str]
    process: Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = start(self.name, self.args, self.env, ARTIFACTS)

    def wait_until_up(self) -> None:
        assert self.process is not None
        wait_until_up(self.process, self.url + "/", START_SECONDS, "Hello from Rasa")

    def kill(self) -> None:
        """SIGKILL: no cleanup, no answer, the lock and the claim left behind."""
        assert self.process is not None
        self.process.popen.kill()
        self.process.popen.wait(10)

    def send(self, sender: str, text: str, message_id: str | None = None, timeout: float = 60) -> Delivery:
        body: dict = {"sender": sender, "message": text}
        if message_id is not None:
            body["message_id"] = message_id
        request = urllib.request.Request(
            self.url + "/webhooks/rest/webhook", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return Delivery(response.status, json.load(response))
        except urllib.error.HTTPError as error:
            return Delivery(error.code, json.load(error))

    def events(self, sender: str) -> list[dict]:
        url = f"{self.url}/conversations/{sender}/tracker?token={TOKEN}"
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.load(response)["events"]


@dataclass
class Cluster:
    a: RasaServer
    b: RasaServer
    redis: PrivateRedis
    proxy: FaultProxy

    def customer_turns(self, sender: str, message_id: str | None = None) -> list[str]:
        """The customer's messages in the shared tracker (those with `message_id`, if given),
        as B reads them (A is the one killed)."""
        return [
            e["text"]
            for e in self.b.events(sender)
            if e["event"] == "user" and (message_id is None or e.get("message_id") == message_id)
        ]


def texts(delivery: Delivery) -> list[str]:
    return [reply.get("text", "") for reply in delivery.replies]


def until_answered(server: RasaServer, sender: str, text: str, message_id: str, timeout: float = 90) -> list[Delivery]:
    """A client sending the message again after each 202 (or a dropped connection) until it
    is answered; every delivery's outcome."""
    deliveries: list[Delivery] = []
    deadline = time.monotonic() + timeout
    while not deliveries or deliveries[-1].status != 200:
        assert time.monotonic() < deadline, f"not answered: {deliveries}"
        if deliveries:
            time.sleep(0.5)  # a client's Retry-After, shortened
        try:
            deliveries.append(server.send(sender, text, message_id))
        except OSError as error:  # the server went away mid-request
            deliveries.append(Delivery(0, [{"error": repr(error)}]))
    return deliveries


def rasa_files(directory: Path, actions_url: str, tracker_db: str, redis: PrivateRedis) -> None:
    """endpoints.yml as the project's, with the SQL tracker store, the atomic lock store and
    this action server; credentials.yml with the channel alone."""
    endpoints = yaml.safe_load((PROJECT / "endpoints.yml").read_text(encoding="utf-8"))
    endpoints["action_endpoint"]["url"] = actions_url
    endpoints["tracker_store"] = {
        "type": "SQL", "dialect": "postgresql", "url": "127.0.0.1", "port": 5432, "db": tracker_db,
        "username": "postgres",
    }  # fmt: skip
    endpoints["lock_store"] = {
        "type": "bot.lock_store.AtomicRedisLockStore", "url": "127.0.0.1", "port": redis.port, "db": 1,
        "socket_timeout": 1, "retry_seconds": 1,
    }  # fmt: skip
    (directory / "endpoints.yml").write_text(yaml.safe_dump(endpoints, allow_unicode=True), encoding="utf-8")
    channel = {"claim_seconds": CLAIM_SECONDS, "wait_seconds": WAIT_SECONDS, "keep_seconds": 600}
    (directory / "credentials.yml").write_text(
        yaml.safe_dump({"bot.channels.rest.IdempotentRestInput": channel}), encoding="utf-8"
    )


@pytest.fixture(scope="module")
def tracker_db() -> Iterator[str]:
    """A PostgreSQL database of this module's own for Rasa's trackers, dropped afterwards."""
    name = f"rest_trackers_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(POSTGRES_ADMIN_URL, connect_timeout=5)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, tracker_db: str) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("rest-channel")
    database_url = f"sqlite:///{directory / 'bot.db'}"
    upgrade(database_url)
    ensure_demo_data(session_factory(database_url), clock.now())
    redis = PrivateRedis(directory).start()
    actions_port = free_port()
    rasa_files(directory, f"http://127.0.0.1:{actions_port}/webhook", tracker_db, redis)
    with running(make_server(database_url, "127.0.0.1", 0)) as company_url:
        proxy = FaultProxy(company_url, slow_seconds=SLOW_SECONDS)
        env = {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis.url,
            "TICKET_LOCK_LIFETIME": str(LOCK_LIFETIME),
            "UTILITY_BACKEND": "http",
            "UTILITY_API_URL": proxy.url,
            "UTILITY_TIMEOUT_SECONDS": str(SLOW_SECONDS + 3),
            "UTILITY_RETRIES": "0",
            "RASA_TELEMETRY_ENABLED": "false",
            **ACTION_SERVER_ENV,
        }
        action_server = [str(VENV_BIN / "rasa"), "run", "actions", "--port", str(actions_port)]
        actions = start("rest-channel-actions", action_server, env, ARTIFACTS)
        servers = [
            RasaServer(
                f"rest-channel-{name}",
                port,
                [
                    str(VENV_BIN / "rasa"), "run", "--port", str(port), "--interface", "127.0.0.1",
                    "--model", str(PROJECT / "models" / "current.tar.gz"),
                    "--endpoints", str(directory / "endpoints.yml"),
                    "--credentials", str(directory / "credentials.yml"),
                    "--enable-api", "--auth-token", TOKEN,
                ],
                env,
            )
            for name, port in (("a", free_port()), ("b", free_port()))
        ]  # fmt: skip
        try:
            for server in servers:
                server.start()
            wait_until_up(actions, f"http://127.0.0.1:{actions_port}/health")
            for server in servers:
                server.wait_until_up()
            yield Cluster(servers[0], servers[1], redis, proxy)
        finally:
            for server in servers:
                if server.process is not None:
                    server.process.stop()
            actions.stop()
            proxy.close()
            redis.kill()


@pytest.fixture
def whole(cluster: Cluster) -> Iterator[Cluster]:
    """The cluster with both servers and Redis up and the company API healthy."""
    for server in (cluster.a, cluster.b):
        if server.process is None or server.process.popen.poll() is not None:
            server.start()
            server.wait_until_up()
    if cluster.redis.process is None or cluster.redis.process.poll() is not None:
        cluster.redis.start()
    cluster.proxy.mode = "pass"
    yield cluster
    cluster.proxy.mode = "pass"


def customer() -> tuple[str, str]:
    """A new conversation and a message id."""
    return f"rest-{uuid.uuid4().hex[:10]}", uuid.uuid4().hex


def test_a_message_sent_again_is_processed_once_and_answered_alike_by_either_server(whole: Cluster):
    sender, message_id = customer()
    first = whole.a.send(sender, "你好", message_id)
    again = [whole.a.send(sender, "你好", message_id), whole.b.send(sender, "你好", message_id)]

    assert first.status == 200 and first.replies and all(r["recipient_id"] == sender for r in first.replies)
    assert [d.status for d in again] == [200, 200]
    assert [d.replies for d in again] == [first.replies, first.replies]
    assert whole.customer_turns(sender) == ["你好"]
    assert whole.customer_turns(sender, message_id) == ["你好"]  # Rasa kept the client's id


def test_without_a_message_id_it_is_rasas_rest_channel(whole: Cluster):
    sender, _ = customer()
    first, second = whole.a.send(sender, "你好"), whole.b.send(sender, "你好")

    assert first.status == second.status == 200 and first.replies and second.replies
    assert whole.customer_turns(sender) == ["你好", "你好"]  # two messages, two turns


def test_a_message_id_that_is_not_a_short_string_is_refused(whole: Cluster):
    sender, _ = customer()
    for bad in ["", "x" * 129, {"id": 1}, True]:
        request = urllib.request.Request(
            whole.a.url + "/webhooks/rest/webhook",
            json.dumps({"sender": sender, "message": "你好", "message_id": bad}).encode(),
            {"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 400, bad
    assert whole.customer_turns(sender) == []


def test_the_same_message_on_both_servers_at_once_is_processed_once(whole: Cluster):
    """A slow turn (4 s) on one server; the duplicate on the other hears 202 with the polite
    text after 2 s, and the same replies when the client sends it again."""
    whole.proxy.mode = "slow"
    sender, message_id = customer()
    barrier = threading.Barrier(2)
    outcomes: dict[str, list[Delivery]] = {}

    def client(server: RasaServer) -> None:
        barrier.wait()
        outcomes[server.name] = until_answered(server, sender, OUTAGE_QUESTION, message_id)

    threads = [threading.Thread(target=client, args=(server,)) for server in (whole.a, whole.b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    a, b = outcomes[whole.a.name], outcomes[whole.b.name]
    assert a[-1].replies == b[-1].replies and any(OUTAGE_ANSWER in t for t in texts(a[-1]))
    waited = [d for d in a + b if d.status == 202]
    assert waited, "neither delivery found the other still working"
    assert all(texts(d) == [STILL_WORKING] for d in waited)
    assert whole.customer_turns(sender) == [OUTAGE_QUESTION]


def test_a_server_killed_mid_turn_the_retry_on_the_other_answers_once(whole: Cluster):
    whole.proxy.mode = "slow"
    sender, message_id = customer()
    asked = whole.proxy.requests
    lost: list[Delivery] = []

    def first_delivery() -> None:
        with contextlib.suppress(OSError):  # A dies with the request open
            lost.append(whole.a.send(sender, OUTAGE_QUESTION, message_id))

    thread = threading.Thread(target=first_delivery)
    thread.start()
    deadline = time.monotonic() + 60
    while whole.proxy.requests == asked:  # A's turn is in the action, waiting for the company API
        assert time.monotonic() < deadline, "A's turn never reached the company API"
        time.sleep(0.05)
    whole.a.kill()
    thread.join(30)
    assert lost == [], "A answered before it was killed"

    deliveries = until_answered(whole.b, sender, OUTAGE_QUESTION, message_id)
    assert any(OUTAGE_ANSWER in t for t in texts(deliveries[-1]))
    assert whole.customer_turns(sender) == [OUTAGE_QUESTION]  # A saved nothing, B saved it once
    again = whole.b.send(sender, OUTAGE_QUESTION, message_id)
    assert (again.status, again.replies) == (200, deliveries[-1].replies)


def test_with_redis_down_a_turn_saved_but_never_answered_is_answered_from_the_tracker(whole: Cluster):
    """A answered, but the reply never reached the client; then Redis, with the claim and
    the kept replies, goes down. The retry on B claims the message again (in the database
    now) and finds the turn in the tracker: the same replies, no second turn. New messages
    are answered meanwhile, and the servers use Redis again once it is back."""
    sender, message_id = customer()
    first = whole.a.send(sender, "你好", message_id)
    assert first.status == 200

    whole.redis.kill()
    retry = whole.b.send(sender, "你好", message_id)
    assert (retry.status, retry.replies) == (200, first.replies)
    assert whole.customer_turns(sender) == ["你好"]
    assert "its replies from the tracker" in whole.b.process.log()

    other, other_id = customer()
    assert whole.a.send(other, "你好", other_id).status == 200  # the degraded mode answers
    for server in (whole.a, whole.b):
        log = server.process.log()
        assert log.count("DEGRADED MODE") == 1 and "using the database" in log, server.name

    whole.redis.start()
    deadline = time.monotonic() + 60
    back = ["lock store: Redis is back", "message store: Redis is back"]
    while not all(line in whole.b.process.log() for line in back):
        assert time.monotonic() < deadline, "B never went back to Redis"
        assert whole.b.send(other, "谢谢", uuid.uuid4().hex).status == 200
        time.sleep(1)  # retry_seconds
    last = uuid.uuid4().hex
    assert whole.b.send(other, "再见", last).status == 200
    assert whole.redis.client().hget(f"inbound:rest:{message_key(other, last)}", "state") == b"answered"
