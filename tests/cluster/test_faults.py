"""Parts of the production profile failing while customers talk to it, and what the customer
and the agents get: with every action server dead, a customer is told plainly and, once
the action servers are back, their conversation is in the agents' queue with one ticket
(nginx's actions door, the analytics consumer and the recovery worker together); with
Redis gone the bot goes on in its degraded mode; PostgreSQL restarted while complaints are
filed loses no ticket a customer was told of and files none twice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import select

from bot.analytics.models import InterruptionRow
from bot.db import session_factory
from bot.handoff import service
from bot.replies import catalogue
from bot.tickets.service import conversation_tickets
from tests.cluster.conftest import Deployment
from tests.e2e.servers import RestClient
from tests.event_stream import wait_for
from tests.load import Customer, check_database, complain_all, make_customers

pytestmark = pytest.mark.e2e

ACTION_SERVERS = ("actions-1", "actions-2")
Beside = Callable[[list[Customer]], Awaitable[None]]  # runs beside the customers' load
APOLOGY = catalogue()["actions_down"][0]


def test_with_every_action_server_dead_the_customer_is_told_and_later_handed_to_a_person(
    deployment: Deployment,
) -> None:
    cluster, layout = deployment.cluster, deployment.layout
    sessions = session_factory(deployment.database_url)
    sender = f"cut-off-{uuid.uuid4().hex[:8]}"

    def interruptions() -> list[InterruptionRow]:
        with sessions() as session:
            return list(session.scalars(select(InterruptionRow).where(InterruptionRow.conversation_id == sender)))

    recovery_log = cluster.log_dir / "recovery.log"
    try:
        for name in ACTION_SERVERS:
            cluster.kill(name)
        replies = RestClient(layout.public_url).send(sender, "帮我查下电费")
        assert APOLOGY in replies, replies  # never silence

        wait_for(interruptions, "the analytics consumer records the interruption", 60)
        wait_for(lambda: "wait for the action servers" in recovery_log.read_text(encoding="utf-8"),
              "the recovery worker sees it and waits", 30)  # fmt: skip
        assert conversation_tickets(sessions, sender, open_only=False) == []
    finally:
        for name in ACTION_SERVERS:
            if not cluster.parts[name].running():
                cluster.restart(name)

    rows = wait_for(
        lambda: (rows := interruptions()) and all(row.recovered_at and row.ticket_number for row in rows) and rows,
        "the worker hands the conversation over once the action servers answer",
        120,
    )
    [ticket] = conversation_tickets(sessions, sender, open_only=False)
    assert ticket.subject == "handoff" and {row.ticket_number for row in rows} == {ticket.number}
    handoff = service.live_handoff(sessions, sender)
    assert handoff is not None and handoff.ticket_number == ticket.number  # in the console's queue
    assert handoff.status == "waiting"

    tracker = deployment.tracker(sender)
    assert tracker["slots"]["handoff_ticket"] == ticket.number
    said = [event.get("text") or "" for event in tracker["events"] if event["event"] == "bot"]
    assert APOLOGY in said and any(ticket.number in text for text in said[said.index(APOLOGY) :]), said

    # the conversation goes on with the agent: the bot stays silent and keeps the words for them
    assert RestClient(layout.public_url).send(sender, "大概要等多久") == []
    kept = [message.text for message in service.messages(sessions, ticket.number) if message.speaker == "customer"]
    assert kept == ["大概要等多久"]
    assert [t.number for t in conversation_tickets(sessions, sender, open_only=False)] == [ticket.number]


def _complaints(deployment: Deployment, count: int, during: Beside | None = None) -> None:
    """`count` customers complain at once through the public door (retrying with their
    message ids), `during` beside them; the database must then hold each one's ticket once,
    as each was told."""
    customers = make_customers(count, uuid.uuid4().hex[:6], own_addresses=True)
    beside = (lambda: during(customers)) if during else None
    asyncio.run(complain_all(deployment.layout.public_url, customers, timeout=120, retries=8, during=beside))
    figures, problems = check_database(deployment.database_url, customers)
    untold = "\n".join(
        f"{c.sender}: " + " | ".join(f"{t.text!r} ({t.attempts}x {t.status} {t.error}) -> {t.replies}" for t in c.turns)
        for c in customers
        if not c.told
    )  # as a string: pytest would shorten a structure's repr
    assert not problems, f"{figures}\n{problems[:10]}\nnot told a number:\n{untold}"
    assert all(customer.told for customer in customers), [c.errors for c in customers if not c.told]


def test_with_redis_gone_the_bot_goes_on_in_its_degraded_mode(deployment: Deployment) -> None:
    layout, rasa_logs = deployment.layout, [deployment.cluster.log_dir / f"rasa-{n}.log" for n in (1, 2)]

    def every_log_says(words: str) -> bool:
        return all(words in log.read_text(encoding="utf-8") for log in rasa_logs)

    def back_on_every_server() -> bool:
        """Each server tries Redis again at a turn 5 s after its last failure: greet each."""
        for url in layout.rasa_urls:
            assert RestClient(url).send(f"probe-{uuid.uuid4().hex[:8]}", "你好")
        return every_log_says("Redis is back")

    deployment.redis.kill()
    try:
        _complaints(deployment, 6)  # locks per server, message ids in the database meanwhile
        for url in layout.rasa_urls:  # both servers met the missing Redis
            assert RestClient(url).send(f"probe-{uuid.uuid4().hex[:8]}", "你好")
        assert every_log_says("DEGRADED MODE")
    finally:
        deployment.redis.start()
    wait_for(back_on_every_server, "the servers lock through Redis again", 60)
    _complaints(deployment, 4)


def test_postgresql_restarted_while_complaints_are_filed_loses_and_doubles_no_ticket(deployment: Deployment) -> None:
    async def restart_when_busy(customers: list[Customer]) -> None:
        while not any(turn.replies for customer in customers for turn in customer.turns[1:]):
            await asyncio.sleep(0.05)  # until the complaints are being filed
        await asyncio.to_thread(deployment.postgres.restart)

    _complaints(deployment, 20, during=restart_when_busy)
