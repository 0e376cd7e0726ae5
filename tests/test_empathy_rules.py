"""The eight wrong ways of handling a complaint (seed 001, docs/domain.md), as rules over
the scripted responses: domain.yml's empathy lines (utter_empathy_*) and safety advice
(utter_hazard_safety), and the bot/replies.yml texts the complaint journeys say.

1. an apology with no action after it      5. rudeness
2. blaming the customer                     6. dodging responsibility (passing the buck)
3. a promise that is not kept (a time the   7. cold rejection: the same canned line again
   data does not support)                   8. interrogating the customer
4. no response (silence: tests/test_ticket_journeys.py checks every turn of every journey)

Recorded conversations are tested end to end elsewhere; these are the texts themselves
and the actions that choose among them.
"""

from __future__ import annotations

import re
import string
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from actions.context import empathize
from actions.requests import ActionFulfilRequest
from actions.tickets import ActionAskCallbackPhone, ActionAskComplaintText, ActionFileTicket
from bot import clock, complaints, models
from bot.db import session_factory
from bot.empathy import TOPICS, response_name
from bot.identity import NEEDS_IDENTITY
from bot.replies import _scripted_part, catalogue, render_scripted, scripted
from bot.tickets.categories import STATUSES
from bot.utility import _build
from tests.test_actions import DOMAIN, make_tracker, run

EMPATHY: dict[str, list[str]] = {name: texts for name, texts in scripted().items() if name.startswith("utter_empathy_")}
SAFETY: list[str] = scripted()["utter_hazard_safety"]
PREFIXES = (
    "next_",
    "filed_",
    "ticket_",
    "reconnection_",
    "ask_",
    "confirm_",
    "choose_",
    "offer_",
    "handoff_",
    "fallback_",
    "identity_locked",
    "contact_",
)
JOURNEY: dict[str, list[str]] = {key: texts for key, texts in catalogue().items() if key.startswith(PREFIXES)}
NEXT: dict[str, list[str]] = {key: texts for key, texts in JOURNEY.items() if key.startswith("next_")}
# what a customer reads after an empathy line or a filing: the texts that must never send them elsewhere
EMPATHY_AND_FILING = {
    key: texts
    for key, texts in JOURNEY.items()
    if key.startswith(("next_", "filed_", "ticket_", "contact_", "handoff_", "reconnection_", "offer_"))
}


def every(*groups: dict[str, list[str]]) -> list[tuple[str, int, str]]:
    return [(name, i, text) for group in groups for name, texts in group.items() for i, text in enumerate(texts)]


ALL = every(EMPATHY, {"utter_hazard_safety": SAFETY}, JOURNEY)


def ids(cases: list[tuple[str, int, str]]) -> list[str]:
    return [f"{name}[{i}]" for name, i, _ in cases]


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


APOLOGY = re.compile(r"抱歉|对不起|道歉|不好意思")
# what the bot does itself, now: look up, file, hand over, arrange, flag, book
ACTION = re.compile(r"查|登记|工单|转|安排|标记|催办|预约|报修|记下|记在")
BLAME = ("您自己", "你自己", "怪您", "怪你", "您的问题", "你的问题", "您没有按", "谁让您", "谁让你", "你应该")
RUDE = ("不知道", "不归我管", "自己去", "随便", "爱咋咋", "没办法", "别问我", "我不清楚", "跟我没关系", "你们自己")
BUCK = ("请拨打95598", "拨打95598", "找别的部门", "其他部门", "不归我们", "不是我们的事", "去营业厅", "自己去")
# a span of time: 5个工作日, 24小时, 两天, 10点 ...
TIME = re.compile(r"(?:\d+|[一二两三四五六七八九十半几]+)\s*个?(?:工作日|分钟|小时|天|周|星期)|\d+\s*点")
QUESTION = re.compile(r"[？?]")


def test_the_texts_under_test_are_there():
    assert len(EMPATHY) == len(TOPICS) and set(EMPATHY) == {response_name(topic) for topic in TOPICS}
    assert {"identity_locked", "fallback_handoff", "handoff_ack", "ticket_store_down"} <= set(JOURNEY)
    # every journey files with a filed_<subject> text (a handoff: queued live, or a callback,
    # filed_handoff when the queue cannot be reached);
    # every offer can be declined in words
    filed = {f"filed_{subject}" for subject in complaints.SUBJECTS}
    assert filed | {"handoff_live", "handoff_callback"} <= set(JOURNEY)
    assert {f"offer_declined_{offer}" for offer in DOMAIN["slots"]["offer"]["values"]} <= set(JOURNEY)
    assert {f"ticket_{status}" for status in STATUSES} <= set(JOURNEY)


# --- 1. no apology without an action after it ------------------------------------------------------


@pytest.mark.parametrize(("name", "i", "text"), every(EMPATHY), ids=ids(every(EMPATHY)))
def test_every_empathy_line_apologises_then_hands_over_to_what_the_bot_does(name, i, text):
    assert APOLOGY.search(text), "an empathy line acknowledges the trouble"
    assert text.endswith("{next}") and text.count("{next}") == 1
    assert placeholders(text) <= {"next", "about"}


NEXT_CASES = every(NEXT)


@pytest.mark.parametrize(
    ("name", "i", "text"),
    [case for case in NEXT_CASES],
    ids=ids(NEXT_CASES),
)
def test_every_next_step_names_a_concrete_action(name, i, text):
    assert ACTION.search(text), f"no concrete action in {name}: {text}"
    assert not APOLOGY.search(text)  # the apology is the empathy line's; the next step acts


# texts whose apology closes them: the action that answers it is the next message of the same
# turn (answer_reconnection files the urgent ticket right after; test below)
APOLOGY_THEN_TICKET = {"reconnection_overdue", "reconnection_no_order"}


def test_every_other_apology_is_followed_by_an_action():
    closing = set()
    for name, _, text in every(JOURNEY, {"utter_hazard_safety": SAFETY}):
        apologies = list(APOLOGY.finditer(text))
        if not apologies:
            continue
        after = text[apologies[-1].end() :]
        if not ACTION.search(after):
            closing.add(name)
    assert closing == APOLOGY_THEN_TICKET


def test_the_safety_advice_ends_with_the_urgent_ticket():
    for text in SAFETY:
        last = text.rsplit("。", 2)[-2]
        assert ACTION.search(last) and "加急" in last


@contextmanager
def wang_qiangs_orders(sqlite_url: str) -> Iterator[Session]:
    """A session on 王强's reconnection orders; the demo's orders are put back afterwards."""
    orders = models.ReconnectionOrder
    mine = orders.account_number == "3201000003"
    with session_factory(sqlite_url)() as session:
        rows = session.scalars(select(orders).where(mine))
        kept = [{c.name: getattr(o, c.name) for c in orders.__table__.columns} for o in rows]
    try:
        with session_factory(sqlite_url).begin() as session:
            yield session
    finally:
        with session_factory(sqlite_url).begin() as session:
            session.execute(delete(orders).where(mine))
            session.add_all(orders(**row) for row in kept)


@pytest.fixture
def order_never_made(sqlite_url: str) -> Iterator[None]:
    """王强 paid yesterday and is still disconnected, but no reconnection order was made."""
    with wang_qiangs_orders(sqlite_url) as session:
        session.execute(delete(models.ReconnectionOrder).where(models.ReconnectionOrder.account_number == "3201000003"))
        session.commit()
        yield


@pytest.fixture
def only_an_old_order(sqlite_url: str) -> Iterator[None]:
    """王强 paid yesterday and is still disconnected; his only reconnection order is an old,
    completed one (an earlier disconnection): none was made for this payment."""
    orders = models.ReconnectionOrder
    old = clock.now() - timedelta(days=90)
    with wang_qiangs_orders(sqlite_url) as session:
        session.execute(
            update(orders)
            .where(orders.account_number == "3201000003")
            .values(status="done", created_at=old, due_at=old + timedelta(hours=24), completed_at=old)
        )
        session.commit()
        yield


@pytest.fixture
def demo_database(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("UTILITY_BACKEND", "sql")
    monkeypatch.delenv("TICKET_SLA_NORMAL_MINUTES", raising=False)
    _build.cache_clear()
    yield sqlite_url
    _build.cache_clear()


def conversation(slots: dict, text: str, intent: str) -> Tracker:
    """A tracker of a conversation of its own: tickets filed here are nobody else's."""
    tracker = make_tracker(slots, text, intent)
    tracker.sender_id = f"empathy-rules-{uuid.uuid4().hex}"
    return tracker


WANG_QIANG = {"account_number": "3201000003", "verified_account": "3201000003", "identity_proof": "verified"}


@pytest.mark.parametrize(
    ("situation", "key"),
    [
        pytest.param(None, "reconnection_overdue", id="overdue"),
        pytest.param("order_never_made", "reconnection_no_order", id="no-order"),
        pytest.param("only_an_old_order", "reconnection_no_order", id="only-an-old-order"),
    ],
)
def test_a_reconnection_apology_is_followed_by_its_ticket_in_the_same_turn(request, demo_database, situation, key):
    if situation:
        request.getfixturevalue(situation)
    assert "payment_not_restored" in NEEDS_IDENTITY
    tracker = conversation({"request": "payment_not_restored", **WANG_QIANG}, "交了钱还没电", "payment_not_restored")
    messages, _ = run(ActionFulfilRequest(), tracker)
    found, filed = messages
    (template,) = catalogue()[key]
    assert found.endswith(template.rsplit("，", 1)[-1])  # "……非常抱歉。"
    assert filed.startswith("我已为您提交加急复电工单") and re.search(r"GD\d{12}", filed)


# --- 2 and 5. no blame, no rudeness ------------------------------------------------------------------


@pytest.mark.parametrize(("name", "i", "text"), ALL, ids=ids(ALL))
def test_no_text_blames_the_customer_or_is_rude(name, i, text):
    for words in BLAME + RUDE:
        assert words not in text, f"{name}[{i}] says {words}"


# --- 6. no passing the buck ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "i", "text"),
    every(EMPATHY, EMPATHY_AND_FILING),
    ids=ids(every(EMPATHY, EMPATHY_AND_FILING)),
)
def test_empathy_and_filing_texts_send_nobody_elsewhere(name, i, text):
    if name == "ticket_store_down":
        # the one honest exception: the ticket could not be filed, a person on 95598 files it
        assert "这次没能为您登记成功" in text and "他们会直接为您登记处理" in text
        return
    for words in BUCK:
        assert words not in text, f"{name}[{i}] passes the buck: {words}"


def test_only_the_ticket_store_failure_names_95598():
    naming = {name for name, _, text in ALL if "95598" in text}
    assert naming == {"ticket_store_down"}


# --- 3. no promise the data does not support -------------------------------------------------------


@pytest.mark.parametrize(("name", "i", "text"), every(EMPATHY, NEXT), ids=ids(every(EMPATHY, NEXT)))
def test_empathy_lines_and_next_steps_promise_no_time(name, i, text):
    assert not TIME.search(text), f"{name}[{i}] promises {TIME.search(text)[0]}"
    assert not re.search(r"\d", text)


def test_fixed_times_are_only_the_published_promises():
    fixed = {(name, span) for name, _, text in every(JOURNEY) for span in TIME.findall(text)}
    assert fixed == {
        ("filed_meter_verification", "5个工作日"),  # the meter test result (供电服务承诺)
        ("reconnection_unpaid", "24小时"),  # power back after payment
        ("ticket_store_down", "24小时"),  # 95598 answers round the clock
    }


@pytest.mark.parametrize("key", sorted(k for k in JOURNEY if k.startswith("filed_")))
def test_filing_texts_say_the_deadline_from_the_sla(key):
    for text in JOURNEY[key]:
        assert "{number}" in text and "{within}内（{due}前）" in text and "{contact}" in text


def test_ticket_status_texts_say_the_deadline_from_the_ticket():
    for key in ("ticket_existing", "ticket_new", "ticket_assigned", "ticket_in_progress", "ticket_overdue"):
        (text,) = JOURNEY[key]
        assert "{due}" in text and not TIME.search(text)


def test_the_deadline_said_is_the_configured_one(demo_database, monkeypatch):
    monkeypatch.setenv("TICKET_SLA_NORMAL_MINUTES", "90")
    slots = {
        "ticket_subject": "complaint",
        "complaint_text": "抄表员态度很差",
        "complaint_category": "staff_conduct",
        "callback_phone": "none",
    }
    tracker = conversation(slots, "不用了", "deny")
    now = clock.now()
    messages, _ = run(ActionFileTicket(), tracker)
    (message,) = messages
    assert "我们会在1小时30分钟内（" in message
    due = now + timedelta(minutes=90)
    assert f"{due:%H:%M}前" in message or f"{due + timedelta(minutes=1):%H:%M}前" in message


# --- 8. no interrogation: one question at most --------------------------------------------------------


@pytest.mark.parametrize(("name", "i", "text"), ALL, ids=ids(ALL))
def test_at_most_one_question_per_text(name, i, text):
    assert len(QUESTION.findall(text)) <= 1


def test_empathy_lines_ask_nothing_and_only_next_ask_what_carries_the_question():
    assert not [name for name, _, text in every(EMPATHY, {"utter_hazard_safety": SAFETY}) if QUESTION.search(text)]
    asking = {name for name, _, text in every(NEXT) if QUESTION.search(text)}
    assert asking == {"next_ask_what"}
    for line in (line for texts in EMPATHY.values() for line in texts):
        for step in (step for texts in NEXT.values() for step in texts):
            assert len(QUESTION.findall(line.replace("{next}", step))) <= 1


# --- 7. never the same line twice ------------------------------------------------------------------------


def test_every_empathy_topic_has_several_distinct_lines():
    for name, texts in {**EMPATHY, "utter_hazard_safety": SAFETY}.items():
        assert len(texts) >= 2, name
        assert len(set(texts)) == len(texts), name
        # render_scripted tells variants apart by their longest scripted part
        assert len({_scripted_part(t) for t in texts}) == len(texts), name


@pytest.mark.parametrize("name", [*sorted(EMPATHY), "utter_hazard_safety"])
def test_render_scripted_says_every_line_before_any_again(name):
    templates = scripted()[name]
    for _ in range(20):
        said: list[str] = []
        used = []
        for _ in templates:
            text = render_scripted(name, avoid=said, next="我马上帮您查清楚。", about="光明路一带")
            (template,) = (t for t in templates if _scripted_part(t) in text)
            assert all(_scripted_part(template) not in earlier for earlier in said), f"{name} repeated: {text}"
            said.append(text)
            used.append(template)
        assert sorted(used) == sorted(templates)
        # all said: a line still comes (rather than silence)
        assert render_scripted(name, avoid=said, next="", about="")


def empathize_once(topic: str, next_key: str, history: list[dict]) -> str:
    dispatcher = CollectingDispatcher()
    tracker = make_tracker({}, "太气人了", "express_frustration", history=history)
    empathize(dispatcher, tracker, topic, next_key)
    (message,) = dispatcher.messages
    return message["text"]


@pytest.mark.parametrize("topic", TOPICS)
def test_empathize_picks_another_line_than_the_one_said(topic):
    first = scripted()[response_name(topic)][0]
    history = [{"event": "bot", "text": first.format(next=catalogue()["next_handoff"][0], about="您那边")}]
    for _ in range(20):
        text = empathize_once(topic, "next_check", history)
        assert _scripted_part(first) not in text


def test_empathize_does_not_repeat_the_next_step_either():
    first_line = scripted()["utter_empathy_general"][0]
    first_step = catalogue()["next_escalate"][0]
    history = [{"event": "bot", "text": first_line.format(next=first_step, about="您那边")}]
    for _ in range(20):
        assert first_step not in empathize_once("general", "next_escalate", history)


@pytest.mark.parametrize("action", [ActionAskCallbackPhone, ActionAskComplaintText])
def test_a_question_asked_again_comes_in_other_words(action):
    key = {ActionAskCallbackPhone: "ask_callback_phone", ActionAskComplaintText: "ask_complaint_text"}[action]
    asked = catalogue()[key]
    assert len(asked) >= 2
    for said_before in range(len(asked)):
        tracker = make_tracker({}, "嗯", "inform", history=[{"event": "bot", "text": asked[said_before]}])
        for _ in range(10):
            (again,), _ = run(action(), tracker)
            assert again in asked and again != asked[said_before]
