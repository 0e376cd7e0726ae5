"""The ticket service's pure rules: categories from the customer's words, priorities,
numbers as customers type them, and the short form of a description."""

from __future__ import annotations

import pytest

from bot.tickets.categories import CATEGORIES, REQUEST_TYPES, STATUSES, infer_category
from bot.tickets.numbers import normalize_number
from bot.tickets.priority import priority_for
from bot.tickets.service import short
from bot.tickets.workflow import TRANSITIONS


def test_priority_rules():
    assert priority_for("hazard", "电线掉下来了", 0, False, False) == "urgent"
    assert priority_for("reconnection_overdue", "交了钱还没电", 0, False, False) == "urgent"
    assert priority_for("complaint", "家里有呼吸机，一直停电", 0, False, False) == "urgent"
    assert priority_for("complaint", "家裏有呼吸機", 0, False, False) == "urgent"  # Traditional
    assert priority_for("complaint", "电费高", 2, False, False) == "high"
    assert priority_for("complaint", "电费高", 0, True, False) == "high"
    assert priority_for("complaint", "电费高", 0, False, True) == "high"
    assert priority_for("fault", "家里没电", 0, False, False) == "high"
    assert priority_for("complaint", "电费高", 1, False, False) == "normal"



@pytest.mark.parametrize(
    "typed, number",
    [
        ("gd202611240007", "GD202611240007"),
        (" GD 2026 1124 0007 ", "GD202611240007"),
        ("ＧＤ２０２６１１２４０００７", "GD202611240007"),
    ],
)
def test_numbers_are_read_in_any_case_and_width(typed, number):
    assert normalize_number(typed) == number


@pytest.mark.parametrize("typed", ["", None, "GD2026", "XY202611240007", "GD20261124000A"])
def test_things_that_are_not_numbers(typed):
    assert normalize_number(typed) is None



def test_vocabularies():
    assert len(CATEGORIES) == 12
    assert CATEGORIES["supply_quality"] == "供电质量" and CATEGORIES["integrity"] == "行风问题"
    assert REQUEST_TYPES == {"complaint": "投诉", "fault_repair": "故障报修", "service_request": "服务申请",
                             "enquiry": "业务咨询"}
    assert set(STATUSES) == set(TRANSITIONS) == {"new", "assigned", "in_progress", "resolved", "closed"}


@pytest.mark.parametrize(
    "text, category",
    [
        ("晚上电压低，灯泡忽明忽暗", "supply_quality"),
        ("打雷后电器烧坏了", "supply_quality"),
        ("我们这里停电了", "outage"),
        ("一直没电，什么时候来电", "outage"),
        ("报修三个小时了抢修人员还没到", "repair_quality"),
        ("抢修太慢了", "repair_quality"),
        ("我家电表走得快", "metering"),
        ("申请校验电表", "metering"),
        ("这个月电费怎么多收了", "tariff_billing"),
        ("阶梯电价算错了", "tariff_billing"),
        ("上个月是估抄的", "meter_reading_collection"),
        ("交了电费还没来电", "meter_reading_collection"),
        ("欠费停电后交了钱一直不复电", "meter_reading_collection"),
        ("催费电话一天打三次", "meter_reading_collection"),
        ("换表以后没人来接电", "meter_installation"),
        ("新装报装一个月了还没批", "connection_project"),
        ("申请增容太慢", "connection_project"),
        ("有人窃电", "usage_inspection"),
        ("95598一直打不通", "service_channel"),
        ("网上国网App交不了费", "service_channel"),
        ("营业厅排队两个小时", "service_channel"),
        ("抄表员态度差", "staff_conduct"),
        ("客服推诿，踢皮球", "staff_conduct"),
        ("工作人员不理人", "staff_conduct"),
        ("装表师傅要收红包", "integrity"),
        ("吃拿卡要", "integrity"),
        ("電壓太低了", "supply_quality"),  # Traditional
        ("９５５９８打不通", "service_channel"),  # full-width digits
        ("你好", None),
        ("", None),
    ],
)
def test_infer_category(text, category):
    assert infer_category(text) == category


def test_short():
    long = "电费" * 2500
    assert len(short(long)) == 60 and short(long).endswith("…")
    assert short("电费太高") == "电费太高"
    assert short("第一行\n第二行", limit=5) == "第一行 …"
    assert short(None) == ""
