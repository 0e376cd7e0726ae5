"""The analytics consumer behind a real Rasa server whose event broker is RabbitMQ (Rasa's
own `pika` broker, configured as the production profile configures it) and the real action
server: a customer's conversation as Rasa streams it gives the dashboard's figures, and
containment agrees with what the embedded default counts for the same conversation."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml

from bot import clock, reports
from bot.db import session_factory
from bot.demo_data import ensure_demo_data
from bot.reports import Period
from bot.schema import upgrade
from tests.e2e.conftest import rasa_endpoints
from tests.e2e.servers import ACTION_SERVER_ENV, PROJECT, VENV_BIN, RestClient, free_port, start, wait_until_up
from tests.event_stream import RABBITMQ_HOST, RABBITMQ_PORT, Rabbit, day_figures, facts, open_rabbit, wait_for

pytestmark = pytest.mark.e2e


@dataclass
class StreamingBot:
    rest: RestClient
    database_url: str
    rabbit: Rabbit


@pytest.fixture(scope="module")
def bot(tmp_path_factory) -> Iterator[StreamingBot]:
    """An action server and a Rasa server (REST channel) on a database of the module's own,
    Rasa publishing every event to a queue and exchange of the module's own."""
    model = PROJECT / "models" / "current.tar.gz"
    if not model.exists():
        pytest.fail("no trained model in models/: run scripts/test.sh (it trains first) or scripts/train.sh")
    folder = tmp_path_factory.mktemp("streaming")
    database_url = f"sqlite:///{folder / 'bot.db'}"
    upgrade(database_url)
    ensure_demo_data(session_factory(database_url), clock.now())
    rabbit = open_rabbit()
    actions_port, rasa_port = free_port(), free_port()
    endpoints = yaml.safe_load(rasa_endpoints(f"http://127.0.0.1:{actions_port}/webhook"))
    endpoints["event_broker"] = {
        "type": "bot.event_broker.PikaEventBroker", "url": RABBITMQ_HOST, "port": RABBITMQ_PORT,
        "username": "guest", "password": "guest", "queues": [rabbit.queue], "exchange_name": rabbit.exchange,
    }  # fmt: skip
    (folder / "endpoints.yml").write_text(yaml.safe_dump(endpoints), encoding="utf-8")
    (folder / "credentials.yml").write_text("rest:\n", encoding="utf-8")
    env = {"DATABASE_URL": database_url, "UTILITY_BACKEND": "sql", "RASA_TELEMETRY_ENABLED": "false",
           **ACTION_SERVER_ENV}  # fmt: skip
    actions = start("streaming-actions", [str(VENV_BIN / "rasa"), "run", "actions", "--port", str(actions_port)],
                    env, folder)  # fmt: skip
    rasa = start(
        "streaming-rasa",
        [
            str(VENV_BIN / "rasa"), "run", "--port", str(rasa_port), "--interface", "127.0.0.1",
            "--model", str(model), "--endpoints", str(folder / "endpoints.yml"),
            "--credentials", str(folder / "credentials.yml"),
        ],
        env,
        folder,
    )  # fmt: skip
    try:
        wait_until_up(actions, f"http://127.0.0.1:{actions_port}/health")
        wait_until_up(rasa, f"http://127.0.0.1:{rasa_port}/", ready="Hello from Rasa")
        yield StreamingBot(RestClient(f"http://127.0.0.1:{rasa_port}"), database_url, rabbit)
    finally:
        rasa.stop()
        actions.stop()
        rabbit.close()


def test_a_conversation_on_rasa_is_counted_from_its_event_stream(bot: StreamingBot, monkeypatch) -> None:
    sender = f"stream-{uuid.uuid4().hex[:10]}"
    assert bot.rest.send(sender, "你好")
    assert "换个说法" in "\n".join(bot.rest.send(sender, "？？？"))
    assert "转接人工客服" in "\n".join(bot.rest.send(sender, "转人工"))
    assert bot.rest.send(sender, "还在吗") == []  # the agent has it: relayed, the bot is silent

    sessions = session_factory(bot.database_url)
    consumer = bot.rabbit.consumer(sessions)

    def relayed_counted() -> bool:
        bot.rabbit.drain(consumer)  # Rasa publishes each turn's events after answering it
        row = facts(sessions, sender)
        return row is not None and row.relayed == 1

    wait_for(relayed_counted, "the customer's last message counted")
    assert consumer.tally.rejected == 0 and consumer.tally.repeated == 0
    row = facts(sessions, sender)
    assert (row.channel, row.messages, row.relayed, row.fallbacks) == ("rest", 4, 1, 1)
    assert row.handed_over_at is not None
    today = row.started_at.date()
    assert day_figures(sessions, today) == (1, 1, 4, 1, 1)

    period = Period(today, today)
    monkeypatch.setenv("ANALYTICS_SOURCE", "events")
    assert reports.containment(sessions, period) == [(today, 1, 1)]
    assert reports.fallbacks(sessions, period) == [(today, 3, 1)]
    monkeypatch.setenv("ANALYTICS_SOURCE", "database")  # what the action server counted itself
    assert reports.containment(sessions, period) == [(today, 1, 1)]
