"""Live handoff through the real Rasa server, action server and callback channel: the bot
stays silent while an agent has the conversation, the agent's words arrive on the
customer's channel through the tracker, one reminder, and the bot resumes with context."""

from __future__ import annotations

import json
import re
import urllib.request
import uuid

import pytest

from bot import clock
from bot.db import session_factory
from bot.handoff import desk, service
from bot.tickets.service import find_ticket
from tests.e2e.conftest import RASA_TOKEN, Stack
from tests.e2e.servers import CallbackCustomer

NUMBER = re.compile(r"GD\d{12}")


@pytest.fixture
def customer(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> CallbackCustomer:
    # the console's side (bot.handoff.desk) reaches this stack's Rasa server
    monkeypatch.setenv("RASA_URL", stack.rasa_url)
    monkeypatch.setenv("RASA_TOKEN", RASA_TOKEN)
    return CallbackCustomer(stack.rasa_url, stack.callbacks, f"cb-{uuid.uuid4().hex[:10]}")


def handed_off(customer: CallbackCustomer) -> str:
    customer.say("转人工")
    queued = customer.wait_for(lambda t: "转接人工客服" in t)
    return NUMBER.search(queued)[0]


def test_while_handed_off_the_bots_policies_do_not_answer(stack: Stack, customer: CallbackCustomer) -> None:
    number = handed_off(customer)
    before = len(stack.callbacks.texts(customer.sender))
    customer.say("帮我查下3201000001的电费")  # a request the bot would answer at once
    customer.say("你好？有人吗")
    events = stack.tracker_events(customer.sender)
    users = [i for i, e in enumerate(events) if e["event"] == "user" and not e["text"].startswith("EXTERNAL")]
    for index in users[-2:]:
        actions = [e for e in events[index + 1 :] if e["event"] == "action"][:2]
        assert [a["name"] for a in actions] == ["action_relay_to_agent", "action_listen"]
        assert {a["policy"] for a in actions} == {"HandoffPolicy"}
    said = [m.text for m in service.messages(session_factory(stack.database_url), number)]
    assert "帮我查下3201****01的电费" in said and "你好？有人吗" in said  # as typed, not normalised
    texts = stack.callbacks.texts(customer.sender)[before:]
    assert not any("元" in t or "户主" in t for t in texts)  # no bill, no identity question


def test_one_reminder_when_nobody_has_claimed(stack: Stack, customer: CallbackCustomer) -> None:
    number = handed_off(customer)
    reminder = customer.wait_for(lambda t: "客服马上就来" in t, timeout=60)
    assert number in reminder
    # the reminder fires again (e.g. a second schedule): it stays silent
    request = urllib.request.Request(
        f"{stack.rasa_url}/conversations/{customer.sender}/trigger_intent?token={RASA_TOKEN}&output_channel=latest",
        json.dumps({"name": "EXTERNAL_handoff_reminder"}).encode(),
        {"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    assert sum("客服马上就来" in t for t in stack.callbacks.texts(customer.sender)) == 1


def test_agent_replies_live_and_hands_back_with_context(stack: Stack, customer: CallbackCustomer) -> None:
    customer.say("查电费，户号3201000001")
    customer.wait_for(lambda t: "户主姓名" in t or "后四位" in t)
    customer.say("张伟")
    customer.wait_for(lambda t: "元" in t)
    number = handed_off(customer)
    sessions = session_factory(stack.database_url)
    service.claim(sessions, number, "wang", clock.now())
    message = desk.reply(sessions, number, "wang", "您好，我是客服小王，您的电费我来核对。", clock.now())
    assert message.error is None
    customer.wait_for(lambda t: t == "【人工客服】您好，我是客服小王，您的电费我来核对。")
    events = stack.tracker_events(customer.sender)
    assert any(e["event"] == "bot" and "客服小王" in (e.get("text") or "") for e in events)  # in the tracker

    desk.hand_back(sessions, number, "wang", clock.now())
    customer.wait_for(lambda t: "转回给我" in t or "交回给我" in t)
    before = len(stack.callbacks.texts(customer.sender))
    customer.say("那上个月的电费呢")
    answer = "\n".join(stack.callbacks.texts(customer.sender)[before:])
    assert "元" in answer and "户主姓名" not in answer  # the bot resumed; identity not asked again


def test_resolved_the_customer_rates_it(stack: Stack, customer: CallbackCustomer) -> None:
    number = handed_off(customer)
    sessions = session_factory(stack.database_url)
    service.claim(sessions, number, "li", clock.now())
    desk.resolve(sessions, number, "li", "已为您预约明天上午上门检查线路。", clock.now())
    customer.wait_for(lambda t: "已办结" in t and "明天上午上门检查线路" in t)
    customer.wait_for(lambda t: "1到5分" in t)
    customer.say("5分，很满意")
    customer.wait_for(lambda t: "5分" in t and "感谢" in t)
    ticket = find_ticket(sessions, number)
    assert ticket.status == "resolved" and ticket.satisfaction == 5
    assert ticket.number in [t.number for t in service.return_visits(sessions, clock.now())]
