"""The frustration detector: calm stays calm, anger is seen, threats escalate, and the
labelled benchmark set keeps its size and balance."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from bot.frustration import FURIOUS, MAX, UPSET, Conversation, score, score_message

PROJECT = Path(__file__).resolve().parents[1]
LABELLED = PROJECT / "bench" / "data" / "frustration.yml"
LEVELS = {"calm", "annoyed", "angry", "furious"}
ALLOWED_INTENTS = {
    "query_bill", "bill_too_high", "query_outage", "report_power_quality", "report_hazard", "meter_dispute",
    "payment_not_restored", "complain", "request_human", "query_ticket", "express_frustration", "greet", "faq",
    "inform", "thank", "deny", "affirm",
}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("我想咨询一下投诉流程，要准备什么材料", "complain"),
        ("还有一个问题，阶梯电价怎么算", "faq"),
        ("不好意思又来打扰，想问下余额还剩多少", "query_bill"),
        ("又到交电费的时候了，这个月多少钱", "query_bill"),
        ("我还没收到账单短信，账单出了吗", "query_bill"),
        ("上周投诉的那个事有结果了吗", "query_ticket"),
        ("12398是什么电话？电费单上印着的", "faq"),
        ("12398投诉电话是多少", "faq"),
        ("看新闻媒体说明年电价要涨，真的吗", "faq"),
        ("可以去网上国网交电费吗", "faq"),
        ("再不交费就会停电吗", "faq"),
        ("家里有病人用制氧机，停电前能通知吗", "query_outage"),
        ("滚筒洗衣机打雷后坏了，能找你们吗", "report_power_quality"),
        ("户号3201000005", "inform"),
        ("我的户号是3212345678", "inform"),
        ("有没有人工客服", "request_human"),
        ("好吧，那我等着吧", "affirm"),
        ("电器烧了能申请赔偿吗", "faq"),
        ("您好，我家停电了，什么时候能来电", "query_outage"),
    ],
)
def test_calm_questions_are_not_upset(text: str, intent: str) -> None:
    assert score_message(text, intent) < UPSET
    assert score_message(text) < UPSET


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("我家三天没电了你们管不管", "query_outage"),
        ("交了钱一整天了还不给送电，你们什么意思", "payment_not_restored"),
        ("停电不通知，冰箱里的肉全坏了，谁来赔", "complain"),
        ("这个月第五次停电了，还让不让人过日子", "query_outage"),
        ("你们效率真高啊，一周了还没修好", "complain"),
        ("电表绝对有问题，你们必须给我个说法", "meter_dispute"),
        ("说好的24小时内送电呢？现在都两天了", "payment_not_restored"),
        ("我不想听解释，马上派人来", "express_frustration"),
    ],
)
def test_clear_anger_is_upset(text: str, intent: str) -> None:
    assert score_message(text, intent) >= UPSET


@pytest.mark.parametrize(
    "text",
    [
        "我要打12398投诉你们",  # regulator
        "再不来电我就找媒体曝光你们",  # the press
        "我已经发微博了，你们等着",  # social media and an ultimatum
        "今天不解决我就去你们供电所门口坐着",  # ultimatum without any keyword
        "垃圾公司",  # insult
        "你们这帮吃干饭的",  # insult
        "又停电了！！！",  # again + shouting
        "啊啊啊停电了",  # screaming
        "我要投诉！！！",  # sustained shouting
        "停电了！！又停电了？！",  # shouting twice
    ],
)
def test_threats_insults_and_shouting_are_furious_with_a_complaint_intent(text: str) -> None:
    assert score_message(text, "complain") == FURIOUS == MAX


def test_shouting_raises_the_score_and_sustained_shouting_counts_double() -> None:
    assert score_message("停电了", "query_outage") == 0
    assert score_message("停电了？！", "query_outage") == 1
    assert score_message("停电了😡", "query_outage") == 1
    assert score_message("停电了！！", "query_outage") == 1
    assert score_message("停电了！！！", "query_outage") == UPSET
    assert score_message("啊啊啊停电了", "query_outage") == UPSET
    assert score_message("人工！！人工！！", "request_human") == UPSET
    assert score_message("哈哈哈好的，谢谢", "thank") == 0  # laughing is not screaming


def test_traditional_and_full_width_input_is_normalised() -> None:
    assert score_message("電費又這麼高！！！") == score_message("电费又这么高!!!") >= UPSET
    assert score_message("我要投訴！！！你們這什麼服務態度！！！", "complain") == FURIOUS
    assert score_message("我要打１２３９８投訴你們", "complain") == FURIOUS
    assert score_message("戶號３２０１２３４５００") == 0  # full-width digits: an account, not the 12345 hotline


def test_conversation_signals_raise_the_score() -> None:
    calm = ("查一下电费", "query_bill")
    assert score(*calm, Conversation()) == score_message(*calm) == 0
    assert score(*calm, Conversation(fallbacks_in_a_row=1)) == 0
    assert score(*calm, Conversation(fallbacks_in_a_row=2)) == 1
    assert score(*calm, Conversation(repeated_question=True)) == 1
    assert score(*calm, Conversation(complained_before=True)) == 1
    assert score(*calm, Conversation(fallbacks_in_a_row=2, repeated_question=True)) == UPSET
    assert score(*calm, Conversation(fallbacks_in_a_row=3, repeated_question=True, complained_before=True)) == MAX


def test_the_score_is_capped() -> None:
    text = "垃圾公司！！！又停电三天了，你们必须给我个说法，我要打12398投诉"
    assert score_message(text, "complain") == MAX
    everything = Conversation(fallbacks_in_a_row=5, repeated_question=True, complained_before=True)
    assert score(text, "complain", everything) == MAX


@pytest.mark.parametrize("text", [None, "", "   ", "😊", "👍👍", "🙏🙏🙏", "。。。", "……"])
def test_empty_and_emoji_only_input_scores_zero(text: str | None) -> None:
    assert score_message(text) == 0
    assert score(text, None, Conversation()) == 0


def test_angry_emoji_only_input_scores_sensibly() -> None:
    assert score_message("😡") == 1  # one angry face: a hint, not yet upset
    assert score_message("😡😡😡") == UPSET  # a row of them is
    assert score_message("🤬", "express_frustration") == UPSET


def test_long_input_does_not_crash_or_stall() -> None:
    started = time.monotonic()
    assert score_message("电费" * 2500) == 0
    assert score_message("我想问一下，" + "还" * 4990) == 0  # 还 alone is no "still not"
    assert score_message("我想问一下，" + "还没" * 2495) == 1
    assert score_message("又停电了！！！" + "啊" * 4993, "complain") == MAX
    assert score_message("你们" * 2500, "complain") == 1
    assert time.monotonic() - started < 2


def _labelled() -> list[dict]:
    return yaml.safe_load(LABELLED.read_text(encoding="utf-8"))["items"]


def test_the_labelled_set_has_the_size_and_balance_of_the_brief() -> None:
    items = _labelled()
    assert len(items) >= 180
    levels = Counter(item["level"] for item in items)
    assert set(levels) == LEVELS
    assert all(count >= 30 for count in levels.values()), levels
    assert levels["calm"] >= 55 and levels["annoyed"] >= 40 and levels["angry"] >= 40
    assert {item["intent"] for item in items} <= ALLOWED_INTENTS
    assert len({item["text"] for item in items}) == len(items), "duplicate texts"
    assert all(item["text"].strip() for item in items)


def test_every_third_labelled_item_is_held_out() -> None:
    items = _labelled()
    held_out = [n for n, item in enumerate(items, start=1) if item.get("held_out")]
    assert held_out == list(range(3, len(items) + 1, 3))
    for level in LEVELS:  # every level is represented in the held-out part
        assert sum(item["level"] == level for item in items if item.get("held_out")) >= 10


def test_no_calm_labelled_message_is_scored_upset() -> None:
    calm = [item for item in _labelled() if item["level"] == "calm"]
    calm_but_upset = [item["text"] for item in calm if score_message(item["text"], item["intent"]) >= UPSET]
    assert not calm_but_upset


def test_the_benchmark_runs() -> None:
    run = subprocess.run(
        [sys.executable, str(PROJECT / "bench" / "frustration.py"), "--errors", "none"],
        cwd=PROJECT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "| held-out | with intent | 69 |" in run.stdout
