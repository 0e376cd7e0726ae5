"""The company's billing or outage system down or slow (issue 8's fault), through the real
Rasa server and action server with the company API behind the fault proxy: the customer
is told plainly, within the HTTP client's timeout, and leaves with the number of a
callback ticket that exists once, in this conversation, however often they ask."""

from __future__ import annotations

import re
import time

import pytest

from bot.db import session_factory
from bot.tickets.records import Ticket
from bot.tickets.service import conversation_tickets
from tests.e2e.conftest import Conversation, Stack

pytestmark = pytest.mark.e2e

NUMBER = re.compile(r"GD\d{12}")
# the stack's company API client: a 1 s timeout, and one retry (tests/e2e/conftest.py)
TIMEOUT_SECONDS = 1.0
# what a turn takes besides waiting for the company's system (NLU, actions, the database)
TURN_SECONDS = 3.0


def the_ticket(stack: Stack, chat: Conversation) -> Ticket:
    """The conversation's one ticket."""
    (ticket,) = conversation_tickets(session_factory(stack.database_url), chat.sender, open_only=False)
    assert ticket.conversation_id == chat.sender
    return ticket


def test_billing_down_files_a_callback_ticket_once_and_takes_the_phone(stack: Stack, chat: Conversation) -> None:
    stack.proxy.mode = "down"
    asked = chat.say("帮我查下3201000001的电费")
    assert "户主姓名" in asked and "后四位" in asked  # the 户号 is kept; the check cannot run yet
    answer = chat.say("张伟")
    number = NUMBER.search(answer)
    assert number and "没有响应" in answer and "抱歉" in answer
    assert "手机号" in answer  # no phone is known: asked for, after the number
    assert "3201****01" not in answer and "张伟" not in answer and not re.search(r"\d(元|度)", answer)
    ticket = the_ticket(stack, chat)
    assert (ticket.number, ticket.subject, ticket.category) == (number[0], "callback", "tariff_billing")
    assert ticket.account_number == "3201000001" and ticket.callback_phone is None
    assert ticket.facts["身份核验"].startswith("未完成")  # the agent checks who they call

    noted = chat.say("13911112222")
    assert number[0] in noted and "139****2222" in noted
    assert the_ticket(stack, chat).callback_phone == "13911112222"

    # the same question again, the system still down: the same ticket, nothing new asked
    chat.say("再帮我查一下电费")
    again = chat.say("张伟")
    assert number[0] in again and "还是没有响应" in again and "手机号" not in again
    assert the_ticket(stack, chat).number == number[0]


@pytest.mark.parametrize("mode", ["down", "slow"])
def test_outage_system_down_or_slow_answers_in_time_with_one_callback_ticket(
    stack: Stack, chat: Conversation, mode: str
) -> None:
    stack.proxy.mode = mode
    before, started = stack.proxy.requests, time.monotonic()
    answer = chat.say("光明路停电了吗")
    seconds, requests = time.monotonic() - started, stack.proxy.requests - before
    number = NUMBER.search(answer)
    assert number and "没有响应" in answer
    ticket = the_ticket(stack, chat)
    assert (ticket.number, ticket.category, ticket.place) == (number[0], "outage", "光明路")
    # no hang: each request to the company's system waited at most the client's timeout
    # (the slow proxy would hold each for 4 s)
    assert seconds < requests * TIMEOUT_SECONDS + TURN_SECONDS, f"{seconds:.1f} s for {requests} requests"

    again = chat.say("光明路现在停电了吗")  # asked again at once, before any phone is given
    assert number[0] in again
    assert the_ticket(stack, chat).number == number[0]

    stack.proxy.mode = "pass"
    assert "幸福里" in chat.say("幸福里停电吗")
