"""Complaint journeys through the real Rasa server and action server: empathy first,
then a ticket with its number and deadline, filed once."""

from __future__ import annotations

import re

import pytest

from bot.db import session_factory
from bot.tickets.service import conversation_tickets, find_ticket, ticket_transcript
from tests.e2e.conftest import Conversation, Stack
from tests.e2e.test_journeys import assert_private, verify

pytestmark = pytest.mark.e2e

NUMBER = re.compile(r"GD\d{12}")
DEADLINE = re.compile(r"\d+(分钟|小时|天)内")
APOLOGY = re.compile(r"抱歉|对不起|道歉")


def filed_number(text: str) -> str:
    found = NUMBER.search(text)
    assert found, f"no ticket number in: {text}"
    assert DEADLINE.search(text), f"no deadline in: {text}"
    return found[0]


def queued_number(text: str) -> str:
    """A conversation handed to a person: the ticket number, and the place in the queue."""
    found = NUMBER.search(text)
    assert found and "转接人工客服" in text, f"not handed over: {text}"
    assert "您是下一位" in text or "您前面还有" in text
    return found[0]


def tickets_of(stack: Stack, chat: Conversation):
    return conversation_tickets(session_factory(stack.database_url), chat.sender, open_only=False)


def test_angry_customer_gets_empathy_first_and_a_ticket_second(stack: Stack, chat: Conversation) -> None:
    first = chat.say("你们这个抄表员态度太差了！！！我问两句就骂人，我要投诉他")
    assert APOLOGY.search(first.split("\n")[0]), first
    assert not NUMBER.search(first)  # the category is confirmed before anything is filed
    assert "服务行为" in first and first.count("？") <= 1
    second = chat.say("对")
    # no account is known: the callback phone is the one question left
    assert "手机号" in second and not NUMBER.search(second)
    done = chat.say("13912345678")
    number = filed_number(done)
    assert "139****5678" in done and "13912345678" not in done
    ticket = find_ticket(session_factory(stack.database_url), number)
    assert ticket.category == "staff_conduct" and ticket.request_type == "complaint"
    assert ticket.priority == "high" and ticket.frustration >= 2
    assert ticket.callback_phone == "13912345678"
    assert "骂人" in ticket.description
    lines = ticket_transcript(session_factory(stack.database_url), number)
    assert any("抄表员" in line.text for line in lines)
    assert not any("13912345678" in line.text for line in lines)


def test_a_resent_complaint_yields_one_ticket(stack: Stack, chat: Conversation) -> None:
    chat.say("我要投诉，营业厅的人把我推来推去，跑了三趟都没办成")
    chat.say("是的")
    first = filed_number(chat.say("不用了"))
    again = chat.say("我要投诉，营业厅的人把我推来推去，跑了三趟都没办成")
    again += chat.say("是的")
    again += chat.say("不用了")
    assert first in again and "已经登记过" in again
    assert [t.number for t in tickets_of(stack, chat)] == [first]


def test_request_human_with_a_known_account_files_at_once(stack: Stack, chat: Conversation) -> None:
    verify(chat, "查电费，户号3201000001", "张伟")
    reply = chat.say("转人工")
    number = queued_number(reply)  # no phone asked: a person answers here
    assert_private(reply)
    ticket = find_ticket(session_factory(stack.database_url), number)
    # the phone on file stays on the ticket, for a callback if the chat breaks off
    assert ticket.account_number == "3201000001" and ticket.callback_phone == "13800000001"


def test_hazard_gets_safety_advice_first_then_an_urgent_ticket(stack: Stack, chat: Conversation) -> None:
    first = chat.say("楼下电线断了掉在地上，还在冒火花")
    assert "远离" in first and "不要" in first
    assert ("位置" in first or "在哪" in first) and not NUMBER.search(first)
    done = chat.say("光明路和解放路路口，公交站旁边")
    number = filed_number(done)
    ticket = find_ticket(session_factory(stack.database_url), number)
    assert ticket.priority == "urgent" and ticket.request_type == "fault_repair"
    assert "解放路" in (ticket.place or "")


def test_paid_but_not_reconnected_files_an_urgent_ticket_with_the_facts(stack: Stack, chat: Conversation) -> None:
    asked = chat.say("我昨天把欠的电费交了，到现在还没来电，户号3201000003")
    assert APOLOGY.search(asked)
    answer = chat.say("王强")
    number = filed_number(answer)
    assert "超时" in answer and "138****0003" in answer
    assert_private(answer)
    ticket = find_ticket(session_factory(stack.database_url), number)
    assert ticket.priority == "urgent" and ticket.category == "meter_reading_collection"
    assert ticket.facts.get("已超时") and ticket.facts.get("缴费金额")


def test_meter_dispute_offers_a_verification_and_files_it(stack: Stack, chat: Conversation) -> None:
    readings = verify(chat, "我觉得我家电表走得太快了，户号3201000002", "李娜")
    assert "表码" in readings and "校验" in readings and readings.count("？") <= 1
    asked = chat.say("好的")
    assert "时间" in asked and not NUMBER.search(asked)
    done = chat.say("周六上午")
    number = filed_number(done)
    ticket = find_ticket(session_factory(stack.database_url), number)
    assert ticket.category == "metering" and ticket.preferred_time == "周六上午"


def test_power_quality_report_files_a_supply_quality_ticket(stack: Stack, chat: Conversation) -> None:
    first = chat.say("我家电压特别低，晚上灯一闪一闪的，空调都启动不了")
    assert APOLOGY.search(first) and ("户号" in first or "地址" in first)
    second = chat.say("3201000002")
    assert "手机" not in second or NUMBER.search(second)
    number = filed_number(second)
    ticket = find_ticket(session_factory(stack.database_url), number)
    assert ticket.category == "supply_quality" and ticket.account_number == "3201000002"


def test_no_known_outage_offers_a_fault_report(stack: Stack, chat: Conversation) -> None:
    answer = chat.say("和平路那边停电了吗")
    assert "没有查到" in answer and "报修" in answer
    done = chat.say("需要")
    if "手机" in done and not NUMBER.search(done):
        done = chat.say("13700000009")
    number = filed_number(done)
    ticket = find_ticket(session_factory(stack.database_url), number)
    assert ticket.category == "outage" and ticket.request_type == "fault_repair"


def test_ticket_status_by_number_inside_a_sentence_any_case(stack: Stack, chat: Conversation) -> None:
    chat.say("我要投诉，抄表员估抄，电费算错了好几次")
    chat.say("对")
    number = filed_number(chat.say("不用了"))
    status = chat.say(f"帮我看看{number.lower()}处理到哪了")
    assert number in status and "联系您" in status


def test_another_customers_ticket_is_never_disclosed(stack: Stack, chat: Conversation) -> None:
    owner = stack.conversation()
    owner.say("我要投诉，营业厅工作人员态度很差")
    owner.say("对")
    number = filed_number(owner.say("13911112222"))
    reply = chat.say(f"查一下工单{number}")
    assert "没有查到" in reply and "态度" not in reply and "139" not in reply
    unknown = chat.say("查一下工单GD202001010001")
    assert "没有查到" in unknown


def test_leaving_the_complaint_form_files_nothing(stack: Stack, chat: Conversation) -> None:
    chat.say("我要投诉")
    left = chat.say("算了，不投诉了")
    assert "不登记" in left and "随时" in left
    assert tickets_of(stack, chat) == []


def test_a_furious_customer_is_handed_to_a_person_with_a_complaint(stack: Stack, chat: Conversation) -> None:
    first = chat.say("你们到底怎么回事！！！这个月第三次停电了，再不解决我就打12398投诉你们")
    assert APOLOGY.search(first.split("\n")[0]), first
    # escalated: the category is confirmed, then the ticket is filed with high priority
    assert "停电" in first and first.count("？") <= 1
    second = chat.say("对")
    done = second if NUMBER.search(second) else chat.say("13922223333")
    number = filed_number(done)
    ticket = find_ticket(session_factory(stack.database_url), number)
    assert ticket.request_type == "complaint" and ticket.priority in ("high", "urgent")
    assert ticket.frustration == 3


def test_identity_answers_are_masked_in_the_ticket(stack: Stack, chat: Conversation) -> None:
    verify(chat, "查电费，户号3201000001", "张伟")
    number = queued_number(chat.say("转人工"))
    lines = ticket_transcript(session_factory(stack.database_url), number)
    text = "\n".join(line.text for line in lines)
    assert "张*" in text and "张伟" not in text and "3201000001" not in text
