"""The console's words: Chinese names for priorities, frustration, handoff states and
ticket events, and how times and deadlines are written."""

from __future__ import annotations

import math
from datetime import datetime

from bot.tickets.categories import CATEGORIES, STATUSES

PRIORITY_NAMES = {"urgent": "紧急", "high": "高", "normal": "普通"}
PRIORITY_ORDER = ("urgent", "high", "normal")
# bot/frustration.py's 0..3, as an agent would say it
FRUSTRATION_WORDS = {0: "平静", 1: "略有不满", 2: "明显不满", 3: "非常愤怒"}
# a ticket without a handoff is worked offline (工单), without the customer on the line
HANDOFF_STATES = {"waiting": "等待接入", "active": "对话中", "callback": "待回电", "ended": "对话已结束", None: "工单"}
SPEAKERS = {"customer": "客户", "bot": "机器人", "agent": "坐席"}
EVENT_KINDS = {
    "filed": "建单",
    "escalated": "转人工",
    "assigned": "派单",
    "claimed": "接单",
    "status_changed": "状态变更",
    "updated": "修改工单",
    "note": "内部备注",
    "callback_phone_changed": "回电号码变更",
    "return_visit": "回访",
    "forwarded": "已转工单系统",
    "pii_shown": "查看客户信息",
    "agent_reply": "坐席回复",
    "handoff_queued": "进入人工队列",
    "handoff_callback": "转为回电",
    "handoff_handed_back": "交回机器人",
    "handoff_resolved": "会话办结",
}
ESCALATION_REASONS = {
    "request_human": "客户要求人工",
    "fallbacks": "机器人多次未听懂",
    "identity_locked": "身份核验被锁定",
    "frustration": "客户情绪激动",
}


def priority_name(priority: str) -> str:
    return PRIORITY_NAMES.get(priority, priority)


def frustration_word(level: int | None) -> str:
    return FRUSTRATION_WORDS.get(level or 0, str(level))


def handoff_state(status: str | None) -> str:
    return HANDOFF_STATES.get(status, status or "")


def when(moment: datetime | None) -> str:
    """11-24 10:05 (the year only when it is not this one)."""
    if moment is None:
        return ""
    if moment.year != datetime.now().year:
        return moment.strftime("%Y-%m-%d %H:%M")
    return moment.strftime("%m-%d %H:%M")


def sla_text(due: datetime, now: datetime) -> str:
    """What the countdown shows (static/js/countdown.js writes the same every second)."""
    seconds = (due - now).total_seconds()
    if seconds >= 0:
        whole = int(seconds)
        return f"剩余 {whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
    return "已超时 " + overdue_words(-seconds)


def overdue_words(seconds: float) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    if minutes < 60:
        return f"{minutes}分钟"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}小时{minutes}分钟" if minutes else f"{hours}小时"
    days, hours = divmod(hours, 24)
    return f"{days}天{hours}小时" if hours else f"{days}天"


PRIORITY_REASONS = {
    "hazard": "安全隐患",
    "reconnection_overdue": "复电超时",
    "life_critical": "涉及生命健康",
    "frustration": "客户情绪激动",
    "repeated": "重复投诉",
    "key_account": "重要客户",
    "fault": "故障停电",
}
PERSONAL_DATA = {
    "account_number": "户号",
    "callback_phone": "回电号码",
    "holder_name": "户名",
    "phone": "预留电话",
    "address": "地址",
}
FIELD_NAMES = {"category": "类别", "priority": "优先级", "substantiated": "是否属实", "unit": "被投诉人员/单位"}


def describe_event(kind: str, detail: dict, names: dict[str, str] | None = None) -> str:
    """One line about a history entry, in words (the entry keeps the details)."""
    if kind == "filed":
        reasons = "、".join(PRIORITY_REASONS.get(r, r) for r in detail.get("reasons", []))
        return f"优先级：{priority_name(detail.get('priority', ''))}" + (f"（{reasons}）" if reasons else "")
    if kind == "escalated":
        return ESCALATION_REASONS.get(detail.get("reason"), detail.get("reason") or "")
    if kind == "status_changed":
        old, new = detail.get("from"), detail.get("to")
        text = f"{STATUSES.get(old, old)} → {STATUSES.get(new, new)}"
        return f"{text}：{detail['note']}" if detail.get("note") else text
    if kind == "assigned":
        agent = detail.get("agent") or ""
        return (names or {}).get(agent, agent)
    if kind == "claimed":
        return ""  # the actor is the one who claimed
    if kind == "note":
        return detail.get("text", "")
    if kind == "updated":
        changed = [(name, change.get("to")) for name, change in detail.items() if name in FIELD_NAMES]
        return "；".join(f"{FIELD_NAMES[name]}：{_shown(name, value)}" for name, value in changed)
    if kind == "return_visit":
        return detail.get("return_visit_result") or ""
    if kind == "pii_shown":
        return detail.get("what", "")
    return ""


def _shown(field: str, value) -> str:
    if field == "category":
        return CATEGORIES.get(value, value)
    if field == "priority":
        return priority_name(value)
    if field == "substantiated":
        return {True: "属实", False: "不属实"}.get(value, "未认定")
    return value or "（空）"


AUDIT_KINDS = {
    "login_ok": "登录成功",
    "login_failed": "登录失败",
    "login_locked": "登录被拒（已锁定）",
    "logout": "退出",
    "user_created": "新建用户",
    "user_role_changed": "修改角色",
    "user_activated": "启用用户",
    "user_deactivated": "停用用户",
    "user_password_reset": "重置密码",
}
CHANNELS = {"rest": "网页接口", "socketio": "网页聊天", "wechat": "微信", "callback": "回调接口"}

ACTORS = {"bot": "机器人", "customer": "客户", "system": "系统", "cli": "命令行"}


def actor_name(actor: str, names: dict[str, str]) -> str:
    """Who did it, as people say it: the agent's display name for `agent:<username>`."""
    if actor.startswith("agent:"):
        username = actor.removeprefix("agent:")
        return names.get(username, username)
    return ACTORS.get(actor, actor)
