"""The ticket's vocabularies: complaint categories, request types and statuses, and the
keyword rules that guess a complaint's category from what the customer wrote.

The twelve categories are the areas of the 95598 complaint definition (docs: domain.md).
"""

from __future__ import annotations

import re

from bot.text import normalize

CATEGORIES: dict[str, str] = {
    "supply_quality": "供电质量",
    "outage": "停电问题",
    "repair_quality": "抢修质量",
    "metering": "电能计量",
    "tariff_billing": "电价电费",
    "meter_reading_collection": "抄表催费",
    "meter_installation": "装表接电",
    "connection_project": "业扩工程",
    "usage_inspection": "用电检查",
    "service_channel": "服务渠道",
    "staff_conduct": "服务行为",
    "integrity": "行风问题",
}

REQUEST_TYPES: dict[str, str] = {
    "complaint": "投诉",
    "fault_repair": "故障报修",
    "service_request": "服务申请",
    "enquiry": "业务咨询",
}

STATUSES: dict[str, str] = {
    "new": "待处理",
    "assigned": "已派单",
    "in_progress": "处理中",
    "resolved": "已办结",
    "closed": "已归档",
}

# First match wins, so the more specific rule comes first: "抄表员态度差" is about the
# person (staff_conduct), "交了电费还没来电" about reconnection after payment
# (meter_reading_collection), not an outage; a bare "工作人员" only decides at the end.
_RULES: list[tuple[str, str]] = [
    ("integrity", r"吃拿卡要|红包|好处费|索要|索贿|回扣|收礼|送礼|请吃饭|私下收|收钱办事"),
    (
        "staff_conduct",
        r"态度|不耐烦|骂人|骂我|推诿|踢皮球|推来推去|不理人|不理我|爱答不理|爱理不理|凶我|吼我|挂我电话|冷漠",
    ),
    ("usage_inspection", r"窃电|偷电|用电检查|违约用电|违章用电|私拉乱接"),
    (
        "meter_reading_collection",
        r"(交|缴|付|充|补)[了过完清好上]?.{0,4}(费|钱).{0,10}(没|不|未)有?(来电|送电|通电|复电|恢复|电)|"
        r"复电|欠费|催费|催缴|抄表|估抄|漏抄|错抄|抄错|抄少|抄多|没抄",
    ),
    (
        "repair_quality",
        r"抢修.{0,6}(慢|不及时|没来|不来|没到|迟迟|半天|不专业|修不好|没修好)|抢修人员|抢修师傅|抢修队|"
        r"抢修的人|报修.{0,8}(没人来|没来|不来|没人管)|修了.{0,4}(又坏|还是不行)",
    ),
    ("metering", r"走得快|走的快|走字快|跑得快|转得快|转的快|校验|校表|验表|计量|表不准|电表不准|电表有问题"),
    ("connection_project", r"新装|报装|增容|业扩|扩容|立户|接入工程"),
    ("meter_installation", r"装表|换表|接电|装电表|换电表|移表|表箱|安装电表"),
    ("metering", r"电表|电能表|表计|智能表|电表坏"),
    (
        "supply_quality",
        r"电压|灯闪|闪烁|一闪一闪|忽明忽暗|时明时暗|电器烧|烧坏|烧了|烧毁|启动不了|带不动|供电质量",
    ),
    (
        "service_channel",
        r"95598|打不通|占线|没人接|app|网上国网|营业厅|排队|公众号|小程序|热线|客服电话|在线客服",
    ),
    ("tariff_billing", r"电费|电价|多收|多扣|乱收|收费|扣费|扣款|扣钱|阶梯|峰谷|账单|缴费|交费|发票"),
    ("outage", r"停电|没电|没有电|断电|来电(?!话)|停了电|供电中断|不来电|经常停"),
    ("staff_conduct", r"工作人员|服务差|服务太差|服务不好|不作为|不负责"),
]
_COMPILED = [(category, re.compile(pattern, re.IGNORECASE)) for category, pattern in _RULES]


def infer_category(text: str) -> str | None:
    """The complaint category the customer's words point to, or None when nothing does."""
    text = normalize(text)
    for category, pattern in _COMPILED:
        if pattern.search(text):
            return category
    return None
