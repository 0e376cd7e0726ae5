"""Customer journeys through the real Rasa server and action server (REST channel)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from bot import clock, months
from tests.e2e.conftest import Conversation, Stack

pytestmark = pytest.mark.e2e

DOMAIN = yaml.safe_load((Path(__file__).resolve().parents[2] / "domain.yml").read_text(encoding="utf-8"))
FULL_ACCOUNT = re.compile(r"(?<!\d)32010000\d\d(?!\d)")
FULL_PHONE = re.compile(r"(?<!\d)1380000000\d(?!\d)")
FIGURES = re.compile(r"\d(\.\d+)?(元|度)")  # an amount or a usage: account data


def assert_private(text: str) -> None:
    assert not FULL_ACCOUNT.search(text), text
    assert not FULL_PHONE.search(text), text


def verify(chat: Conversation, first_message: str, proof: str) -> str:
    """Send a request that needs the identity check, answer it, return the answer."""
    asked = chat.say(first_message)
    assert "户主姓名" in asked and "后四位" in asked, asked
    return chat.say(proof)


# --- bills -----------------------------------------------------------------


def test_bill_with_account_in_first_message_then_follow_up_month(chat: Conversation) -> None:
    answer = verify(chat, "帮我查下3201000001上个月电费", "张伟")
    last_month = months.label(months.shift(clock.today().replace(day=1), -1))
    assert last_month in answer
    assert "320.04元" in answer and "521度" in answer
    assert "3201****01" in answer
    assert "还没有缴费" in answer or "未缴" in answer or "已过缴费截止日" in answer
    assert_private(answer)

    eight = months.label(months.resolve("8月", clock.today()))
    follow_up = chat.say("那8月呢")
    assert eight in follow_up and "元" in follow_up, follow_up
    assert "户主姓名" not in follow_up and "户号" in follow_up


def test_bill_asks_for_account_then_identity_by_phone_digits(chat: Conversation) -> None:
    asked = chat.say("我想查一下电费")
    assert "户号" in asked
    answer = verify(chat, "3201000002", "手机尾号0002")
    assert "3201****02" in answer and "元" in answer and "缴清" in answer
    assert_private(answer)


def test_three_failed_identity_checks_end_the_lookup_without_disclosure(chat: Conversation) -> None:
    chat.say("查电费 户号3201000001")
    first = chat.say("李娜")
    assert "还可以再试2次" in first
    second = chat.say("9999")
    assert "还可以再试1次" in second
    locked = chat.say("王强")
    # a person verifies instead: the conversation is handed over, nothing is disclosed
    assert "人工" in locked and "转接人工客服" in locked and re.search(r"GD\d{12}", locked)
    assert not FIGURES.search(locked) and "138****0001" not in locked
    assert chat.say("查一下电费") == ""  # the agent answers now, not the bot


def test_the_lock_holds_in_a_new_conversation(stack: Stack, chat: Conversation) -> None:
    chat.say("查电费 户号3201000002")
    for wrong in ("张伟", "1111", "王强"):
        chat.say(wrong)
    other = stack.conversation()  # e.g. the same person after /restart, or another browser
    answer = other.say("查电费3201000002")
    assert "人工" in answer and "户主姓名" not in answer and not FIGURES.search(answer)


def test_small_talk_during_the_identity_question_is_not_a_wrong_answer(chat: Conversation) -> None:
    chat.say("查电费3201000001")
    chat.say("你好")
    answer = chat.say("张伟")
    assert "320.04元" in answer and "再试" not in answer


def test_verified_identity_is_not_asked_again_in_the_conversation(chat: Conversation) -> None:
    verify(chat, "查电费3201000001", "0001")
    why = chat.say("电费为什么这么高")
    assert "户主姓名" not in why and "户号" not in why.split("\n")[0]
    assert "估抄" in why
    readings = chat.say("我要看看电表读数")
    assert "表码" in readings and "户主姓名" not in readings


def test_traditional_chinese_bill_query(chat: Conversation) -> None:
    answer = verify(chat, "幫我查詢一下電費，戶號3201000002", "李娜")
    assert "元" in answer and "3201****02" in answer


# --- why is my bill so high -----------------------------------------------------


def test_high_bill_is_explained_from_the_data(chat: Conversation) -> None:
    answer = verify(chat, "3201000001这个月电费怎么这么高", "张伟")
    assert "521度" in answer and "118度" in answer  # this month vs last month
    assert "去年同期" in answer
    assert "估抄" in answer
    assert "400度" in answer and "第3档" in answer  # crossed into the third tier
    assert "校验" in answer and "预约" in answer
    assert_private(answer)


# --- outages -----------------------------------------------------------------


def test_fault_outage_by_area_name(chat: Conversation) -> None:
    answer = chat.say("光明路那边停电了什么时候来电")
    assert "光明路" in answer and "确实停电" in answer and "预计" in answer
    assert "10千伏线路故障" in answer


def test_planned_outage_by_area_name(chat: Conversation) -> None:
    answer = chat.say("幸福里明天是不是要停电")
    assert "幸福里" in answer and "明天08:00至16:00" in answer and "检修" in answer


def test_no_known_outage_is_said_honestly_with_breaker_advice(chat: Conversation) -> None:
    answer = chat.say("和平路停电了吗")
    assert "没有查到" in answer and "跳闸" in answer and "报修" in answer


def test_outage_by_account_asks_for_account_or_place(chat: Conversation) -> None:
    asked = chat.say("家里突然没电了")
    assert "户号" in asked
    answer = chat.say("3201000001")
    assert "您户号所在的片区" in answer and "预计" in answer
    assert "光明路" not in answer  # where an account is, is not said before the identity check
    assert "户主姓名" not in answer


def test_area_told_once_is_remembered(chat: Conversation) -> None:
    chat.say("我家在幸福里")
    answer = chat.say("停电了吗")
    assert "幸福里" in answer and "户号" not in answer


# --- meter readings and FAQ ------------------------------------------------------------


def test_meter_readings_show_six_readings(chat: Conversation) -> None:
    answer = verify(chat, "我觉得电表走得太快了，户号3201000001", "张伟")
    assert len([line for line in answer.splitlines() if line.startswith("· ")]) == 6
    assert "估抄" in answer


FAQ_QUESTIONS = {
    "how_to_pay": "电费在哪里交",
    "tiered_pricing": "阶梯电价是怎么算的",
    "time_of_use_pricing": "峰谷电价怎么收费",
    "meter_verification": "电表校验怎么申请",
    "new_connection": "新房子装电表要怎么办理",
    "change_of_holder": "房子买了怎么过户电费户名",
    "invoice": "电费发票怎么开",
    "service_hours": "营业厅几点上班",
}


@pytest.mark.parametrize("key,question", FAQ_QUESTIONS.items())
def test_faq_answers(chat: Conversation, key: str, question: str) -> None:
    answer = chat.say(question)
    expected = [variant["text"] for variant in DOMAIN["responses"][f"utter_faq/{key}"]]
    assert answer in expected


# --- small talk and fallback -------------------------------------------------------------


@pytest.mark.parametrize(
    "message,response",
    [
        ("你好", "utter_greet"),
        ("你是机器人吗", "utter_iamabot"),
        ("谢谢啊", "utter_youre_welcome"),
        ("再见", "utter_goodbye"),
        ("今天天气怎么样", "utter_out_of_scope"),
        ("好的", "utter_ok"),
        ("不用了", "utter_anything_else"),
    ],
)
def test_small_talk(chat: Conversation, message: str, response: str) -> None:
    assert chat.say(message) in [variant["text"] for variant in DOMAIN["responses"][response]]


def test_bot_challenge_is_answered_honestly(chat: Conversation) -> None:
    answer = chat.say("你是真人还是机器人")
    # either wording: it is a robot, and how to reach a person
    assert "机器人" in answer and "人工" in answer


def test_two_stage_fallback_rephrase_then_a_person(chat: Conversation) -> None:
    # "/nlu_fallback" sets the intent directly, so the dialogue is tested whatever the model
    first = chat.say("/nlu_fallback")
    assert "换个说法" in first
    second = chat.say("/nlu_fallback")
    assert "人工" in second and "转接人工客服" in second and "换个说法" not in second


@pytest.mark.parametrize("message", ["😀😀😀", "？？？", "……"])
def test_meaningless_messages_ask_to_rephrase(chat: Conversation, message: str) -> None:
    assert "换个说法" in chat.say(message)


def test_gibberish_gets_a_polite_way_forward(chat: Conversation) -> None:
    answer = chat.say("asdfgh qwerty zxcv")
    assert "换个说法" in answer or "电费" in answer
