"""The production profile as customers and staff meet it: a conversation goes on whichever
server takes a message; nginx keeps the Rasa HTTP API and the action servers off the
customers' door and holds each customer to a rate; a Rasa server killed under load loses
no customer's message and answers none twice."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
import uuid

import aiohttp
import pytest

from tests.cluster.conftest import RASA_TOKEN, Deployment
from tests.e2e.servers import RestClient
from tests.load import Turn, check_database, complain_all, make_customers, send, session_for

pytestmark = pytest.mark.e2e


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _user_events(deployment: Deployment, sender: str) -> list[dict]:
    return [event for event in deployment.tracker(sender)["events"] if event["event"] == "user"]


def test_a_conversation_goes_on_whichever_server_takes_the_message(deployment: Deployment) -> None:
    first, second = (RestClient(url) for url in deployment.layout.rasa_urls)
    sender = f"either-{uuid.uuid4().hex[:8]}"
    assert "户号" in "\n".join(first.send(sender, "帮我查下电费"))
    asked = "\n".join(second.send(sender, "3201000001"))
    assert "户主姓名" in asked, asked
    answer = "\n".join(first.send(sender, "张伟"))
    assert "3201****01" in answer and "元" in answer, answer
    through_nginx = "\n".join(RestClient(deployment.layout.public_url).send(sender, "那上上个月呢"))
    assert "元" in through_nginx, through_nginx
    assert len(_user_events(deployment, sender)) == 4


def test_the_customers_door_serves_customers_only(deployment: Deployment) -> None:
    public, api = deployment.layout.public_url, deployment.layout.api_url
    assert _get(f"{public}/health")[0] == 200
    assert _get(f"{public}/status?token={RASA_TOKEN}")[0] == 404  # the Rasa HTTP API is not there
    assert _get(f"{public}/conversations/x/tracker?token={RASA_TOKEN}")[0] == 404
    assert _get(f"{public}/webhook")[0] == 404  # nor the actions
    assert _get(f"{api}/status")[0] == 401  # the staff's door wants the token
    assert _get(f"{api}/status?token={RASA_TOKEN}")[0] == 200


def test_nginx_holds_each_customer_to_a_rate(deployment: Deployment) -> None:
    url, layout = deployment.layout.public_url, deployment.layout

    async def flood() -> tuple[list[int], int | None]:
        noisy, calm = make_customers(2, uuid.uuid4().hex[:6], own_addresses=True)
        noisy.address, calm.address = "127.0.9.1", "127.0.9.2"
        async with session_for(noisy, 60) as session:
            turns = [Turn("你好") for _ in range(layout.burst + 15)]
            await asyncio.gather(*(send(session, url, noisy.sender, turn) for turn in turns))
        async with session_for(calm, 60) as session:
            turn = Turn("你好")
            await send(session, url, calm.sender, turn)
        return [turn.status for turn in turns], turn.status

    statuses, calm_status = asyncio.run(flood())
    assert statuses.count(429) >= 10, statuses  # beyond the burst, refused at once
    assert statuses.count(200) >= layout.burst, statuses
    assert calm_status == 200  # another customer is not held up by the noisy one


def test_a_rasa_server_killed_under_load_loses_no_message_and_answers_none_twice(deployment: Deployment) -> None:
    cluster, layout = deployment.cluster, deployment.layout
    customers = make_customers(30, uuid.uuid4().hex[:6], own_addresses=True)

    async def kill_when_busy() -> None:
        # once the first answers come back, the load is in full swing: kill a server
        async with aiohttp.ClientSession() as session:
            while not any(turn.replies for customer in customers for turn in customer.turns):
                async with session.get(f"{layout.public_url}/health"):
                    pass
                await asyncio.sleep(0.05)
        await asyncio.to_thread(cluster.kill, "rasa-1")

    try:
        asyncio.run(complain_all(layout.public_url, customers, timeout=180, retries=8, during=kill_when_busy))
    finally:
        cluster.restart("rasa-1")
    figures, problems = check_database(deployment.database_url, customers)
    assert not problems, (figures, problems[:10])
    assert all(customer.told for customer in customers), [c.errors for c in customers if not c.told]
    retried = sum(turn.attempts > 1 for customer in customers for turn in customer.turns)
    for customer in customers:
        ids = [event.get("message_id") for event in _user_events(deployment, customer.sender)]
        assert sorted(ids) == sorted(turn.message_id for turn in customer.turns), customer.sender
    print(f"{retried} messages were sent again after the kill")
