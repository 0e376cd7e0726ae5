"""One production-profile cluster for the session (bot/cluster): nginx in front of two
Rasa servers and two action servers, PostgreSQL as the tracker store and the product's
database, Redis for locks and the socket.io fan-out, RabbitMQ as the event broker with
the analytics consumer. PostgreSQL and Redis are private instances of the machine's own
binaries, so that the fault tests can kill and restart them; RabbitMQ is the machine's,
with queues of this session's own. The company API is the reference server behind a
fault proxy, as in tests/e2e."""

from __future__ import annotations

import asyncio
import json
import secrets
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import pytest

from bot import clock
from bot.cluster.launcher import Cluster
from bot.cluster.layout import Layout
from bot.db import session_factory
from bot.demo_data import ensure_demo_data
from bot.utility.reference_api import make_server
from tests.e2e.servers import PROJECT, FaultProxy, free_port, running
from tests.pg_instance import PostgresInstance
from tests.private_redis import PrivateRedis

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
RASA_TOKEN = f"cluster-{secrets.token_urlsafe(12)}"


@dataclass
class Deployment:
    cluster: Cluster
    postgres: PostgresInstance
    redis: PrivateRedis
    proxy: FaultProxy  # the company API's door: "pass", "down" or "slow"

    @property
    def layout(self) -> Layout:
        return self.cluster.layout

    @property
    def database_url(self) -> str:
        return self.layout.database_url

    def tracker(self, sender: str) -> dict:
        """The conversation as the Rasa servers keep it (the HTTP API, through the api door)."""
        url = f"{self.layout.api_url}/conversations/{sender}/tracker?token={RASA_TOKEN}"
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.load(response)


def _delete_queue(layout: Layout) -> None:
    async def delete() -> None:
        async with await aio_pika.connect(RABBITMQ_URL) as connection:
            channel = await connection.channel()
            await channel.queue_delete(layout.events_queue)
            await channel.exchange_delete(layout.events_exchange)

    asyncio.run(delete())


@pytest.fixture(scope="session")
def deployment(tmp_path_factory) -> Iterator[Deployment]:
    run_dir = tmp_path_factory.mktemp("cluster")
    tag = uuid.uuid4().hex[:8]
    with PostgresInstance() as postgres:
        redis = PrivateRedis(tmp_path_factory.mktemp("redis")).start()
        database_url = postgres.url("bot")
        try:
            with running(make_server(postgres.url("bot"), "127.0.0.1", 0)) as company_url:
                proxy = FaultProxy(company_url)
                layout = _layout(run_dir, postgres, redis, proxy, tag)
                cluster = Cluster(layout, {"RASA_TOKEN": RASA_TOKEN, "CUSTOMER_TOKEN_SECRET": tag * 4})
                try:
                    cluster.start()  # the schema too
                    ensure_demo_data(session_factory(database_url), clock.now())
                    yield Deployment(cluster, postgres, redis, proxy)
                finally:
                    cluster.stop()
                    proxy.close()
                    _delete_queue(layout)
        finally:
            redis.kill()


def _layout(run_dir: Path, postgres: PostgresInstance, redis: PrivateRedis, proxy: FaultProxy, tag: str) -> Layout:
    return Layout(
        run_dir=run_dir,
        model=PROJECT / "models" / "current.tar.gz",
        rasa_ports=(free_port(), free_port()),
        action_ports=(free_port(), free_port()),
        public_port=free_port(),
        api_port=free_port(),
        actions_port=free_port(),
        database_url=postgres.url("bot"),
        tracker_store_url=postgres.url("rasa"),
        redis_url=redis.url,
        rabbitmq_url=RABBITMQ_URL,
        events_queue=f"rasa_events_test_{tag}",
        events_exchange=f"rasa_exchange_test_{tag}",
        extra_env={
            "UTILITY_BACKEND": "http",
            "UTILITY_API_URL": proxy.url,
            "UTILITY_TIMEOUT_SECONDS": "1",
            "UTILITY_RETRIES": "1",
        },
    )
