"""Bad input gets a clear, polite answer, breaks nothing, and is logged masked."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot import models
from bot.db import session_factory
from tests.e2e.conftest import Conversation, Stack

pytestmark = pytest.mark.e2e


def still_works(chat: Conversation) -> None:
    assert "幸福里" in chat.say("幸福里停电吗")


@pytest.mark.parametrize(
    "message",
    ["", "   ", "😀😀😀🙏", "<script>alert('x')</script>", "'; DROP TABLE accounts; --", "电" * 5000],
    ids=["empty", "spaces", "emoji", "html", "sql", "5000-chars"],
)
def test_odd_messages_get_a_polite_answer(stack: Stack, chat: Conversation, message: str) -> None:
    answer = chat.say(message)
    assert answer.strip(), "the bot must answer"
    assert "<script>" not in answer
    still_works(chat)
    with session_factory(stack.database_url)() as session:
        assert session.scalar(select(func.count()).select_from(models.Account)) == 3


def test_unknown_account_number(chat: Conversation) -> None:
    chat.say("查电费")
    answer = chat.say("3209999999")
    assert "没有查到户号3209****99" in answer


@pytest.mark.parametrize(
    "given,expected",
    [("320100000", "9位"), ("32010a0001", "字母"), ("13800000001", "手机号")],
)
def test_malformed_account_number(chat: Conversation, given: str, expected: str) -> None:
    chat.say("查电费")
    answer = chat.say(given)
    assert expected in answer and "10位" in answer or expected in answer


def test_phone_digits_that_do_not_match(chat: Conversation) -> None:
    chat.say("查电费 3201000001")
    answer = chat.say("尾号1234")
    assert "还可以再试2次" in answer and "元" not in answer


def test_month_without_a_bill(chat: Conversation) -> None:
    chat.say("查一下2020年1月的电费，户号3201000002")
    answer = chat.say("李娜")
    assert "没有找到2020年1月的账单" in answer and "到" in answer


def test_logs_are_masked(stack: Stack, chat: Conversation) -> None:
    chat.say("查电费 3201000001")
    chat.say("尾号13800000001")
    log = stack.actions.log()
    assert "3201****01" in log  # the failed identity check is logged...
    assert "3201000001" not in log and "13800000001" not in log  # ...masked
