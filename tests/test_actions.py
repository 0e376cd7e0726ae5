"""The custom actions on real Rasa SDK trackers and the real demo database.

In the manner of financial-demo's action tests: each test builds the tracker the
action server would receive, runs the action with a CollectingDispatcher, and
asserts on what the bot said and the events it returned. Nothing of ours is
mocked: the actions ask bot/ services, which read the demo data from SQLite (or,
for the outage of the company's system, fail to reach an HTTP port nobody serves).
Identity failures live in the bot's own database (the same SQLite file here), so
each test starts with none recorded.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import delete, select

from actions.account_form import ActionAskAccountNumber, ActionAskIdentityProof, ValidateAccountForm
from actions.fallback import ActionFallback
from actions.requests import ActionFulfilRequest, ActionSetRequest
from bot import clock, identity, models, months
from bot.db import session_factory
from bot.identity import NEEDS_IDENTITY
from bot.replies import catalogue
from bot.tickets.records import Ticket
from bot.tickets.service import conversation_tickets, find_ticket, ticket_events, tickets_db
from bot.utility import _build
from bot.utility.reference_api import make_server
from bot.wording import duration, moment, window
from tests.e2e.servers import running

DOMAIN: dict[str, Any] = yaml.safe_load((Path(__file__).resolve().parents[1] / "domain.yml").read_text("utf-8"))
FORM_SLOTS: list[str] = DOMAIN["forms"]["account_form"]["required_slots"]

# what must never reach a customer who has not proved who they are, nor appear unmasked
FULL_NUMBERS = ("3201000001", "3201000002", "3201000003", "13800000001", "13800000002", "13800000003")
HOLDERS = ("张伟", "李娜", "王强")
ZHANG_WEI = "3201000001"
ZHANG_WEI_MASKED = "3201****01"


# --- the configured company systems ---------------------------------------------


@pytest.fixture(autouse=True)
def demo_database(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The actions read the demo data from the test SQLite database."""
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("UTILITY_BACKEND", "sql")
    monkeypatch.delenv("TARIFF_TIERS", raising=False)
    _build.cache_clear()
    yield sqlite_url
    _build.cache_clear()


@pytest.fixture
def company_system_down(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The HTTP backend pointed at a loopback port where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("UTILITY_BACKEND", "http")
    monkeypatch.setenv("UTILITY_API_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("UTILITY_TIMEOUT_SECONDS", "0.5")
    monkeypatch.setenv("UTILITY_RETRIES", "0")
    _build.cache_clear()
    yield
    _build.cache_clear()


@pytest.fixture
def company_system_slow(monkeypatch: pytest.MonkeyPatch) -> Iterator[float]:
    """The HTTP backend pointed at a loopback port that takes connections and never answers;
    the client's timeout (yielded) with one retry."""
    with socket.create_server(("127.0.0.1", 0)) as silent:  # never accepts: requests sit in its backlog
        monkeypatch.setenv("UTILITY_BACKEND", "http")
        monkeypatch.setenv("UTILITY_API_URL", f"http://127.0.0.1:{silent.getsockname()[1]}")
        monkeypatch.setenv("UTILITY_TIMEOUT_SECONDS", "0.5")
        monkeypatch.setenv("UTILITY_RETRIES", "1")
        _build.cache_clear()
        yield 0.5
    _build.cache_clear()


@pytest.fixture(autouse=True)
def no_identity_failures(sqlite_url: str) -> None:
    """Each test starts with no failed identity check recorded for any account."""
    with session_factory(sqlite_url).begin() as session:
        session.execute(delete(models.IdentityFailure))


def serving(database_url: str):
    """The reference company API on loopback, answering from `database_url`."""
    return running(make_server(database_url, "127.0.0.1", 0))


@pytest.fixture
def bot_database_down(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The company's system answers (over HTTP), but the bot's own database cannot be
    opened: DATABASE_URL names a directory."""
    with serving(sqlite_url) as url:
        monkeypatch.setenv("UTILITY_BACKEND", "http")
        monkeypatch.setenv("UTILITY_API_URL", url)
        monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}")
        _build.cache_clear()
        yield
    _build.cache_clear()


@pytest.fixture
def outage_in_hepinglu(sqlite_url: str) -> Iterator[Callable[..., None]]:
    """Adds outages to 和平路 (which has none in the demo data); removed afterwards."""
    added: list[int] = []

    def add(**fields: Any) -> None:
        with session_factory(sqlite_url).begin() as session:
            area_id = session.scalar(select(models.Area.id).where(models.Area.name == "和平路"))
            outage = models.Outage(area_id=area_id, **fields)
            session.add(outage)
            session.flush()
            added.append(outage.id)

    yield add
    with session_factory(sqlite_url).begin() as session:
        session.execute(delete(models.Outage).where(models.Outage.id.in_(added)))


def record_failures(number: str, *ages: timedelta) -> None:
    """Failed identity checks of `number`, made `ages` ago (as another conversation would)."""
    now = clock.now()
    with session_factory().begin() as session:
        session.add_all(models.IdentityFailure(account_number=number, failed_at=now - age) for age in ages)


def attempts_left(number: str) -> int:
    return identity.identity_attempts().attempts_left(number, clock.now())


# --- trackers and runs ---------------------------------------------------------------


def initial_slots() -> dict[str, Any]:
    slots = {name: spec.get("initial_value") for name, spec in DOMAIN["slots"].items()}
    slots["requested_slot"] = None
    return slots


def entity(name: str, value: str, text: str) -> dict[str, Any]:
    start = text.find(value)
    return {"entity": name, "value": value, "start": start, "end": start + len(value), "extractor": "test"}


def make_tracker(
    slots: dict[str, Any] | None = None,
    text: str = "",
    intent: str | None = "inform",
    entities: Iterable[dict[str, Any]] = (),
    history: Iterable[dict[str, Any]] = (),
    candidates: dict[str, Any] | None = None,
    active_loop: str | None = None,
    sender: str = "test-customer",
) -> Tracker:
    """The tracker after the customer's latest message: `history` before it, then the
    message, then the slot candidates Rasa appends from the domain's entity mappings."""
    latest = {"text": text, "intent": {"name": intent, "confidence": 0.93}, "entities": list(entities)}
    candidates = candidates or {}
    events = [
        *history,
        {"event": "action", "name": "action_listen"},
        {"event": "user", "text": text, "parse_data": latest},
        *({"event": "slot", "name": name, "value": value} for name, value in candidates.items()),
    ]
    all_slots = {**initial_slots(), **(slots or {}), **candidates}
    loop = {"name": active_loop} if active_loop else {}
    return Tracker(sender, all_slots, latest, events, False, None, loop, "action_listen")


def texts(dispatcher: CollectingDispatcher) -> list[str]:
    return [message["text"] for message in dispatcher.messages]


def slot_values(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


def run(action: Action, tracker: Tracker) -> tuple[list[str], list[dict[str, Any]]]:
    """Runs the action as the action server would: awaited when its run is async."""
    dispatcher = CollectingDispatcher()
    if inspect.iscoroutinefunction(action.run):
        events = asyncio.run(action.run(dispatcher, tracker, DOMAIN))
    else:
        events = action.run(dispatcher, tracker, DOMAIN)
    return texts(dispatcher), events


@dataclass
class FormTurn:
    """One run of validate_account_form: what was said, the slots after it, and the
    question the form asks next (None: the form is done)."""

    messages: list[str]
    events: list[dict[str, Any]]
    slots: dict[str, Any]

    @property
    def asks(self) -> str | None:
        # Rasa's FormAction takes the requested_slot the validation action chose; when it
        # chose none, the first empty slot of the form in the domain's order.
        chosen = slot_values(self.events)
        if "requested_slot" in chosen:
            return chosen["requested_slot"]
        return next((name for name in FORM_SLOTS if self.slots.get(name) is None), None)


def form_turn(slots: dict[str, Any], text: str, intent: str = "inform", **tracker_args: Any) -> FormTurn:
    tracker = make_tracker(slots, text, intent, active_loop="account_form", **tracker_args)
    before = dict(tracker.slots)
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ValidateAccountForm().run(dispatcher, tracker, DOMAIN))
    return FormTurn(texts(dispatcher), events, {**before, **slot_values(events)})


def fulfil(sender: str | None = None, **slots: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """action_fulfil_request in a conversation of its own (or `sender`'s)."""
    sender = sender or f"test-{uuid.uuid4().hex[:12]}"
    return run(ActionFulfilRequest(), make_tracker(slots, "好的", "affirm", sender=sender))


def reply(key: str, **values: Any) -> str:
    """The one variant of a reply (for keys that have one)."""
    (text,) = catalogue()[key]
    return text.format(**values)


def variants(key: str, **values: Any) -> list[str]:
    """Every variant of a reply, filled."""
    return [text.format(**values) for text in catalogue()[key]]


def assert_nothing_personal(messages: Iterable[str]) -> None:
    for text in messages:
        for secret in FULL_NUMBERS + HOLDERS:
            assert secret not in text, f"{secret} disclosed in: {text}"


TICKET_FORM_SLOTS = (
    "complaint_text",
    "complaint_category",
    "category_guess",
    "callback_phone",
    "place",
    "preferred_time",
)


def followups(events: list[dict[str, Any]]) -> list[str]:
    return [e["name"] for e in events if e.get("event") == "followup"]


def assert_escalated(events: list[dict[str, Any]], subject: str, reason: str) -> None:
    """The events start the ticket form for `subject` at once (FollowupAction), with
    nothing carried into it from an earlier ticket."""
    slots = slot_values(events)
    assert slots["ticket_subject"] == subject
    assert slots["escalation"] == reason
    assert followups(events) == ["ticket_form"]
    assert events[-1]["event"] == "followup"


def assert_locked_and_handed_over(messages: list[str], events: list[dict[str, Any]]) -> None:
    """Locked: nothing of the account is said; a person verifies the customer instead."""
    assert len(messages) == 1 and messages[0] in variants("identity_locked")
    assert "转人工" in messages[0]
    assert ZHANG_WEI_MASKED not in messages[0] and "元" not in messages[0] and "度" not in messages[0]
    assert_nothing_personal(messages)
    assert_escalated(events, "handoff", "identity_locked")
    slots = slot_values(events)
    assert slots["identity_proof"] is None
    # the ticket form starts empty: the phone on file of a locked account is not used
    assert {name: slots[name] for name in TICKET_FORM_SLOTS} == dict.fromkeys(TICKET_FORM_SLOTS)
    assert set(slots) == {"identity_proof", "ticket_subject", "escalation", *TICKET_FORM_SLOTS}


def callback_ticket(events: list[dict[str, Any]]) -> Ticket:
    """The ticket the events say was filed (filed_ticket), as stored."""
    ticket = find_ticket(tickets_db(), slot_values(events)["filed_ticket"])
    assert ticket is not None
    return ticket


def assert_told_callback(message: str, ticket: Ticket) -> None:
    """The company's system did not answer: the customer hears so, with the callback ticket's
    number and, as every filed ticket's reply, its deadline in plain words."""
    assert ticket.subject == "callback"
    within = duration(ticket.sla_due_at - ticket.created_at)
    due = moment(ticket.sla_due_at, clock.now())
    variants_of = catalogue()["filed_callback"]
    heads = [v.split("{contact}")[0].format(number=ticket.number, within=within, due=due) for v in variants_of]
    assert any(message.startswith(head) for head in heads), message
    assert "没有响应" in message and f"{within}内（{due}前）" in message


# --- action_set_request ----------------------------------------------------------------


def test_set_request_remembers_a_new_request():
    _, events = run(ActionSetRequest(), make_tracker({"request": "query_outage"}, "帮我查下电费", "query_bill"))
    assert slot_values(events) == {"request": "query_bill", "month": None, "area": None}


def test_set_request_keeps_the_previous_request_on_inform():
    text = "那8月呢"
    tracker = make_tracker(
        {"request": "bill_too_high", "month": "9月"}, text, "inform", entities=[entity("month", "8月", text)]
    )
    _, events = run(ActionSetRequest(), tracker)
    assert slot_values(events) == {"request": "bill_too_high", "month": "8月", "area": None}


def test_set_request_forgets_the_month_of_an_earlier_message():
    _, events = run(ActionSetRequest(), make_tracker({"month": "9月"}, "电费为什么这么高", "bill_too_high"))
    assert slot_values(events)["month"] is None


def test_set_request_takes_month_and_area_from_the_entities():
    text = "幸福里9月份的电费"
    tracker = make_tracker(
        {}, text, "query_bill", entities=[entity("address", "幸福里", text), entity("month", "9月", text)]
    )
    _, events = run(ActionSetRequest(), tracker)
    assert slot_values(events) == {"request": "query_bill", "month": "9月", "area": "幸福里"}


def test_set_request_finds_a_known_area_in_the_text():
    _, events = run(ActionSetRequest(), make_tracker({}, "光明路那边停电了吗", "query_outage"))
    assert slot_values(events) == {"request": "query_outage", "month": None, "area": "光明路"}


def test_set_request_without_any_request_so_far_leaves_it_empty():
    _, events = run(ActionSetRequest(), make_tracker({}, "嗯", "inform"))
    assert slot_values(events)["request"] is None


def test_set_and_fulfil_request_are_async():
    assert inspect.iscoroutinefunction(ActionSetRequest.run)
    assert inspect.iscoroutinefunction(ActionFulfilRequest.run)


@pytest.mark.parametrize("request_name", [*NEEDS_IDENTITY, "query_outage"])
def test_set_request_forgets_the_request_on_an_inform_that_carries_nothing_for_it(request_name):
    _, events = run(ActionSetRequest(), make_tracker({"request": request_name}, "好的", "inform"))
    assert slot_values(events) == {"request": None, "month": None, "area": None}


def test_set_request_an_inform_with_another_account_continues_a_bill_request():
    text = "3201000002"
    tracker = make_tracker(
        {"request": "query_bill", "area": "光明路"}, text, "inform", entities=[entity("account_number", text, text)]
    )
    _, events = run(ActionSetRequest(), tracker)
    # the 户号 says where the customer is: the place named before no longer applies
    assert slot_values(events) == {"request": "query_bill", "month": None, "area": None}


def test_set_request_a_place_alone_does_not_continue_a_bill_request():
    text = "幸福里呢"
    tracker = make_tracker({"request": "query_bill"}, text, "inform", entities=[entity("address", "幸福里", text)])
    _, events = run(ActionSetRequest(), tracker)
    assert slot_values(events)["request"] is None


def test_set_request_a_month_alone_does_not_continue_an_outage_request():
    text = "那8月呢"
    tracker = make_tracker({"request": "query_outage"}, text, "inform", entities=[entity("month", "8月", text)])
    _, events = run(ActionSetRequest(), tracker)
    assert slot_values(events)["request"] is None


@pytest.mark.parametrize(
    ("text", "address", "area"),
    [
        pytest.param("那光明路18号呢", "光明路18号", "光明路", id="known-area-in-the-address"),
        pytest.param("和平路那边呢", None, "和平路", id="known-area-in-the-text"),
        pytest.param("月亮湾小区呢", "月亮湾小区", "月亮湾小区", id="unknown-place-kept-as-said"),
    ],
)
def test_set_request_a_place_continues_an_outage_request(text, address, area):
    entities = [entity("address", address, text)] if address else []
    tracker = make_tracker({"request": "query_outage", "area": "幸福里"}, text, "inform", entities=entities)
    _, events = run(ActionSetRequest(), tracker)
    assert slot_values(events) == {"request": "query_outage", "month": None, "area": area}


def test_set_request_an_account_continues_an_outage_request_and_clears_the_area():
    text = "3201000001那边呢"
    tracker = make_tracker(
        {"request": "query_outage", "area": "幸福里"},
        text,
        "inform",
        entities=[entity("account_number", "3201000001", text)],
    )
    _, events = run(ActionSetRequest(), tracker)
    assert slot_values(events) == {"request": "query_outage", "month": None, "area": None}


def test_set_request_keeps_the_area_named_earlier():
    tracker = make_tracker({"request": "query_outage", "area": "幸福里"}, "现在停电了吗", "query_outage")
    _, events = run(ActionSetRequest(), tracker)
    assert slot_values(events) == {"request": "query_outage", "month": None, "area": "幸福里"}


# --- the account form: 户号 ------------------------------------------------------------------

BILL_ASKS_NUMBER = {"request": "query_bill", "requested_slot": "account_number"}


@pytest.mark.parametrize(
    ("text", "candidates"),
    [
        pytest.param("3201000001", {"account_number": ZHANG_WEI}, id="entity"),
        pytest.param("我的户号是 3201000001", None, id="typed-text"),
        pytest.param("３２０１０００００１", None, id="full-width"),
    ],
)
def test_good_account_number_then_the_identity_question(text, candidates):
    turn = form_turn(BILL_ASKS_NUMBER, text, candidates=candidates)
    assert turn.slots["account_number"] == ZHANG_WEI
    assert turn.slots["identity_proof"] is None
    assert turn.asks == "identity_proof"
    assert turn.messages == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("320100000", ["户号是10位数字", "您发的是9位"], id="nine-digits"),
        pytest.param("32010A0001", ["有字母", "10位"], id="letters"),
        pytest.param("13800000001", ["手机号", "10位"], id="phone"),
        pytest.param("我不知道户号", ["还没看到户号", "10位"], id="no-number"),
        pytest.param("3201999999", ["没有查到户号3201****99", "核对"], id="unknown"),
    ],
)
def test_unusable_account_number_gets_a_polite_reply_and_is_asked_again(text, expected):
    turn = form_turn(BILL_ASKS_NUMBER, text)
    assert turn.slots["account_number"] is None
    assert turn.asks == "account_number"
    (message,) = turn.messages
    for words in expected:
        assert words in message
    if any(c.isdigit() for c in text):
        assert text not in message  # the number typed is never echoed in full


def test_a_change_of_subject_is_not_taken_as_the_account_number():
    turn = form_turn(BILL_ASKS_NUMBER, "怎么交电费", intent="faq")
    assert turn.slots["account_number"] is None
    assert turn.messages == []
    assert turn.asks == "account_number"


def test_digits_are_taken_as_the_account_number_whatever_the_intent():
    turn = form_turn(BILL_ASKS_NUMBER, "3201000001", intent="complain")
    assert turn.slots["account_number"] == ZHANG_WEI
    assert turn.asks == "identity_proof"


@pytest.mark.parametrize(("text", "intent"), [("你好", "greet"), ("谢谢", "thank"), ("我要投诉", "complain")])
def test_words_of_another_intent_are_not_taken_as_the_account_number(text, intent):
    turn = form_turn(BILL_ASKS_NUMBER, text, intent=intent)
    assert "account_number" not in slot_values(turn.events)
    assert turn.messages == []
    assert turn.asks == "account_number"


def test_text_nlu_did_not_understand_is_taken_as_an_account_answer():
    turn = form_turn(BILL_ASKS_NUMBER, "不太清楚", intent="nlu_fallback")
    assert turn.slots["account_number"] is None
    assert turn.messages == variants("account_missing")
    assert turn.asks == "account_number"


def test_ask_account_number_for_a_bill_and_for_an_outage():
    bill, _ = run(ActionAskAccountNumber(), make_tracker({"request": "query_bill"}, "查电费", "query_bill"))
    outage, _ = run(ActionAskAccountNumber(), make_tracker({"request": "query_outage"}, "停电了", "query_outage"))
    assert len(bill) == 1 and bill[0] in catalogue()["ask_account_number_bill"]
    assert outage == [reply("ask_account_number_outage")]
    assert "小区" in outage[0]


# --- the account form: identity ------------------------------------------------------------

ZHANG_WEI_ASKS_PROOF = {"request": "query_bill", "account_number": ZHANG_WEI, "requested_slot": "identity_proof"}


def test_ask_identity_proof():
    messages, events = run(ActionAskIdentityProof(), make_tracker(ZHANG_WEI_ASKS_PROOF, "3201000001"))
    assert len(messages) == 1 and messages[0] in variants("ask_identity_proof")
    assert "后四位" in messages[0]
    assert events == []


@pytest.mark.parametrize("answer", ["张伟", "户主是张伟", "0001", "手机尾号是0001", "13800000001"])
def test_correct_identity_verifies_the_account(answer):
    turn = form_turn(ZHANG_WEI_ASKS_PROOF, answer)
    assert turn.slots["identity_proof"] == "verified"
    assert turn.slots["verified_account"] == ZHANG_WEI
    assert turn.slots["locked_account"] is None
    assert turn.asks is None
    assert turn.messages == []


def test_a_name_is_taken_as_the_identity_answer_whatever_the_intent():
    text = "张伟"
    turn = form_turn(ZHANG_WEI_ASKS_PROOF, text, intent="greet", entities=[entity("person_name", text, text)])
    assert turn.slots["identity_proof"] == "verified"
    assert turn.slots["verified_account"] == ZHANG_WEI


@pytest.mark.parametrize(("text", "intent"), [("你好", "greet"), ("😀", "nlu_fallback"), ("怎么交电费", "faq")])
def test_a_message_that_is_no_answer_is_not_a_failed_identity_check(text, intent):
    turn = form_turn(ZHANG_WEI_ASKS_PROOF, text, intent=intent)
    assert "identity_proof" not in slot_values(turn.events)
    assert turn.slots["verified_account"] is None and turn.slots["locked_account"] is None
    assert turn.asks == "identity_proof"
    assert turn.messages == []
    assert attempts_left(ZHANG_WEI) == identity.MAX_ATTEMPTS


def test_three_wrong_answers_lock_the_account_without_disclosing_anything():
    first = form_turn(ZHANG_WEI_ASKS_PROOF, "李娜")
    assert len(first.messages) == 1 and first.messages[0] in variants("identity_mismatch", left=2)
    assert "还可以再试2次" in first.messages[0] and "人工" in first.messages[0]
    assert slot_values(first.events)["identity_proof"] is None
    assert first.slots["verified_account"] is None and first.slots["locked_account"] is None
    assert first.asks == "identity_proof"
    assert attempts_left(ZHANG_WEI) == 2  # kept in the bot's database, not in a slot
    assert "identity_failures" not in first.slots and "identity_locked" not in first.slots

    second = form_turn(first.slots, "0002")
    assert len(second.messages) == 1 and "还可以再试1次" in second.messages[0]
    assert second.slots["locked_account"] is None
    assert second.asks == "identity_proof"
    assert attempts_left(ZHANG_WEI) == 1

    third = form_turn(second.slots, "0001 0002")  # two guesses in one answer count as a wrong one
    assert slot_values(third.events)["identity_proof"] == "locked"
    assert slot_values(third.events)["locked_account"] == ZHANG_WEI
    assert third.slots["verified_account"] is None
    assert third.asks is None
    assert third.messages == []
    assert attempts_left(ZHANG_WEI) == 0

    for turn in (first, second, third):
        assert_nothing_personal(turn.messages)
        assert all("0001" not in m and "光明路" not in m for m in turn.messages)

    messages, events = fulfil(**third.slots)
    assert_locked_and_handed_over(messages, events)


def test_after_the_lock_the_identity_is_not_asked_again():
    locked = {**ZHANG_WEI_ASKS_PROOF, "requested_slot": None, "locked_account": ZHANG_WEI, "identity_proof": None}
    turn = form_turn(locked, "那上个月的呢")
    assert turn.asks is None
    assert turn.slots["verified_account"] is None


def lock_in_another_conversation(number: str = ZHANG_WEI) -> None:
    slots = {"request": "query_bill", "account_number": number, "requested_slot": "identity_proof"}
    for answer in ("王强", "0009", "1234"):
        turn = form_turn(slots, answer)
        slots = turn.slots
    assert turn.slots["locked_account"] == number


@pytest.mark.parametrize("request_name", NEEDS_IDENTITY)
def test_the_lock_holds_in_a_new_conversation(request_name):
    lock_in_another_conversation()

    # a new conversation: nothing carried over but the failures in the database
    text = "我的户号3201000001"
    turn = form_turn(
        {"request": request_name, "requested_slot": "account_number"},
        text,
        entities=[entity("account_number", ZHANG_WEI, text)],
        candidates={"account_number": ZHANG_WEI},
    )
    assert turn.slots["account_number"] == ZHANG_WEI
    assert slot_values(turn.events)["locked_account"] == ZHANG_WEI
    assert turn.slots["verified_account"] is None
    assert turn.asks is None  # the identity is not asked: no answer could open the account
    assert turn.messages == []

    messages, events = fulfil(**turn.slots)
    assert_locked_and_handed_over(messages, events)


def test_a_right_answer_does_not_open_an_account_locked_meanwhile():
    asked = form_turn(BILL_ASKS_NUMBER, "3201000001")
    assert asked.asks == "identity_proof"
    lock_in_another_conversation()

    turn = form_turn({**asked.slots, "requested_slot": "identity_proof"}, "张伟")
    assert slot_values(turn.events)["identity_proof"] == "locked"
    assert turn.slots["locked_account"] == ZHANG_WEI
    assert turn.slots["verified_account"] is None
    assert turn.asks is None
    messages, events = fulfil(**turn.slots)
    assert_locked_and_handed_over(messages, events)


def test_the_lock_is_per_account():
    lock_in_another_conversation(ZHANG_WEI)
    turn = form_turn(BILL_ASKS_NUMBER, "3201000002")
    assert turn.slots["locked_account"] is None
    assert turn.asks == "identity_proof"
    answered = form_turn({**turn.slots, "requested_slot": "identity_proof"}, "李娜")
    assert answered.slots["verified_account"] == "3201000002"
    messages, _ = fulfil(**answered.slots)
    assert len(messages) == 1 and messages[0].startswith("户号3201****02，")


def test_a_locked_account_still_gets_outage_information():
    lock_in_another_conversation()
    turn = form_turn({"request": "query_outage", "requested_slot": "account_number"}, "3201000001")
    assert turn.slots["account_number"] == ZHANG_WEI
    assert turn.slots["locked_account"] is None  # outages disclose nothing of the account
    assert turn.asks is None
    messages, _ = fulfil(**turn.slots)
    assert len(messages) == 1 and messages[0].startswith("您户号所在的片区目前确实停电了")


def test_a_passed_check_clears_the_earlier_failures():
    first = form_turn(ZHANG_WEI_ASKS_PROOF, "李娜")
    second = form_turn(first.slots, "0002")
    assert "还可以再试1次" in second.messages[0]
    passed = form_turn(second.slots, "张伟")
    assert passed.slots["verified_account"] == ZHANG_WEI
    assert attempts_left(ZHANG_WEI) == identity.MAX_ATTEMPTS

    # a new conversation has all three attempts again
    again = form_turn(ZHANG_WEI_ASKS_PROOF, "王强")
    assert len(again.messages) == 1 and "还可以再试2次" in again.messages[0]
    assert again.slots["locked_account"] is None


def test_failures_older_than_the_lock_window_do_not_count():
    old = identity.LOCK_WINDOW + timedelta(hours=1)
    record_failures(ZHANG_WEI, old, old, old, timedelta(hours=2))
    turn = form_turn(BILL_ASKS_NUMBER, "3201000001")
    assert turn.slots["locked_account"] is None
    assert turn.asks == "identity_proof"

    wrong = form_turn({**turn.slots, "requested_slot": "identity_proof"}, "李娜")
    assert "还可以再试1次" in wrong.messages[0]
    locked = form_turn(wrong.slots, "0009")
    assert locked.slots["locked_account"] == ZHANG_WEI
    assert locked.messages == []


def test_a_verified_account_is_not_asked_for_identity_again():
    verified = {"request": "bill_too_high", "account_number": ZHANG_WEI, "verified_account": ZHANG_WEI}
    turn = form_turn(verified, "电费怎么这么高", intent="bill_too_high")
    assert slot_values(turn.events).get("requested_slot", "not set") is None
    assert turn.messages == []


def test_the_verified_account_typed_again_is_not_asked_for_identity():
    verified = {**BILL_ASKS_NUMBER, "verified_account": ZHANG_WEI}
    turn = form_turn(verified, "3201000001")
    assert turn.slots["account_number"] == ZHANG_WEI
    assert "identity_proof" not in slot_values(turn.events)
    assert turn.asks is None


@pytest.mark.parametrize("stale_proof", [None, "verified"])
def test_another_account_after_verification_asks_for_identity_again(stale_proof):
    text = "再查一下3201000002的电费"
    slots = {"request": "query_bill", "verified_account": ZHANG_WEI, "identity_proof": stale_proof}
    turn = form_turn(
        slots,
        text,
        intent="query_bill",
        entities=[entity("account_number", "3201000002", text)],
        candidates={"account_number": "3201000002"},
    )
    assert slot_values(turn.events)["account_number"] == "3201000002"
    assert slot_values(turn.events)["identity_proof"] is None
    assert turn.asks == "identity_proof"

    answered = form_turn({**turn.slots, "requested_slot": "identity_proof"}, "李娜")
    assert answered.slots["verified_account"] == "3201000002"
    assert answered.asks is None


# --- the account form: outage ----------------------------------------------------------------


def test_outage_with_a_known_area_needs_no_account():
    turn = form_turn({"request": "query_outage", "area": "光明路"}, "光明路停电了吗", intent="query_outage")
    assert slot_values(turn.events)["requested_slot"] is None
    assert turn.messages == []


def test_outage_with_an_area_typed_instead_of_the_account_number():
    turn = form_turn({"request": "query_outage", "requested_slot": "account_number"}, "幸福里")
    assert turn.slots["area"] == "幸福里"
    assert turn.asks is None
    assert turn.messages == []

    messages, _ = fulfil(**turn.slots)
    assert len(messages) == 1 and "幸福里一带计划于明天08:00至16:00停电" in messages[0]


def test_outage_area_typed_instead_of_the_account_number_is_not_kept_as_the_account_number():
    turn = form_turn({"request": "query_outage", "requested_slot": "account_number"}, "幸福里")
    assert turn.slots["account_number"] is None


def test_outage_with_an_account_number_asks_no_identity():
    turn = form_turn({"request": "query_outage", "requested_slot": "account_number"}, "3201000001")
    assert turn.slots["account_number"] == ZHANG_WEI
    assert turn.asks is None


def test_outage_place_said_as_an_outage_question_is_taken_while_the_account_is_asked():
    outage = {"request": "query_outage", "requested_slot": "account_number"}
    turn = form_turn(outage, "光明路那边停电了", intent="query_outage")
    assert turn.slots["area"] == "光明路"
    assert turn.slots["account_number"] is None
    assert turn.asks is None
    assert turn.messages == []


# --- action_fulfil_request: bills -------------------------------------------------------------

VERIFIED_ZHANG_WEI = {"account_number": ZHANG_WEI, "verified_account": ZHANG_WEI, "identity_proof": "verified"}


def this_month():
    return clock.today().replace(day=1)


def assert_status_of_latest_bill(message: str) -> None:
    due = this_month().replace(day=25)  # the latest bill (last month) is due on the 25th of this month
    assert f"缴费截止日期是{due.month}月{due.day}日" in message
    if due >= clock.today():
        assert f"目前还没有缴费，请在{due.month}月{due.day}日前缴纳" in message
    else:
        assert reply("bill_overdue") in message
        assert "已过缴费截止日还没有缴纳" in message and "违约金" in message


def test_bill_of_the_latest_month():
    messages, events = fulfil(request="query_bill", **VERIFIED_ZHANG_WEI)
    (message,) = messages
    latest = months.shift(this_month(), -1)
    assert message.startswith(f"户号{ZHANG_WEI_MASKED}，{months.label(latest)}的电费是320.04元，用电521度")
    assert_status_of_latest_bill(message)
    assert_nothing_personal(messages)
    assert slot_values(events) == {"identity_proof": None}


def test_bill_of_a_given_month():
    estimated = months.shift(this_month(), -2)  # 张伟's estimated month, 118 kWh
    messages, _ = fulfil(request="query_bill", month=f"{estimated.month}月", **VERIFIED_ZHANG_WEI)
    (message,) = messages
    assert f"户号{ZHANG_WEI_MASKED}，{months.label(estimated)}的电费是62.34元，用电118度" in message
    assert "缴清" in message
    assert_nothing_personal(messages)


def test_bill_of_a_month_with_no_bill_gives_the_range_on_record():
    asked = months.shift(this_month(), -36)
    messages, _ = fulfil(request="query_bill", month=months.label(asked), **VERIFIED_ZHANG_WEI)
    earliest, latest = months.shift(this_month(), -14), months.shift(this_month(), -1)
    assert messages == [
        f"没有找到{months.label(asked)}的账单。我这里能查到的是{months.label(earliest)}到{months.label(latest)}的账单，"
        "您想看哪个月？"
    ]


def test_bill_of_this_month_is_not_issued_yet_and_the_latest_is_given():
    messages, _ = fulfil(request="query_bill", month="本月", **VERIFIED_ZHANG_WEI)
    assert len(messages) == 2
    latest = months.label(months.shift(this_month(), -1))
    assert messages[0] == reply("bill_not_issued", month=months.label(this_month()), latest=latest)
    assert messages[0] == f"{months.label(this_month())}的账单还没有出来，出账后就能查到。目前最近一期是{latest}的："
    assert messages[1].startswith(f"户号{ZHANG_WEI_MASKED}，{latest}的电费是320.04元")
    assert_nothing_personal(messages)


def test_bill_that_was_paid_says_when():
    previous = months.shift(this_month(), -3)  # paid like every bill but the latest
    messages, _ = fulfil(request="query_bill", month=months.label(previous), **VERIFIED_ZHANG_WEI)
    (message,) = messages
    assert message.startswith(f"户号{ZHANG_WEI_MASKED}，{months.label(previous)}的电费是")
    assert "已于" in message and "缴清" in message
    assert "违约金" not in message


def test_high_bill_is_explained_by_the_estimated_reading_and_the_tier():
    messages, events = fulfil(request="bill_too_high", **VERIFIED_ZHANG_WEI)
    (message,) = messages
    latest, previous = months.shift(this_month(), -1), months.shift(this_month(), -2)
    assert f"{months.label(latest)}用电521度，电费320.04元" in message
    assert f"{months.label(previous)}用电118度" in message and "多了403度" in message
    assert f"{months.label(previous)}的读数是估抄" in message
    assert "两个月合计用电639度" in message
    assert "超过了400度" in message and "第3档" in message
    (tier_line,) = (line for line in message.splitlines() if "档" in line)
    assert tier_line.startswith(f"另外，{months.label(latest)}用电超过了400度") and "这个月" not in tier_line
    # the reasons involve an estimated reading: the next step explains it and offers a meter test
    assert message.endswith(reply("high_bill_next_step_estimated"))
    assert "估抄" in reply("high_bill_next_step_estimated") and "校验" in message
    assert message.count("？") == 1 and slot_values(events)["offer"] == "meter_verification"
    assert reply("high_bill_next_step") not in message
    assert_nothing_personal(messages)


def test_high_bill_names_the_tier_only_when_the_bill_was_priced_by_the_configured_tariff(monkeypatch):
    # the demo bills were priced with the default tiers; another tariff cannot explain them
    monkeypatch.setenv("TARIFF_TIERS", "200:0.5,350:0.6,:0.9")
    messages, _ = fulfil(request="bill_too_high", **VERIFIED_ZHANG_WEI)
    (message,) = messages
    assert "320.04元" in message and "估抄" in message
    assert "档" not in message and "超过了" not in message


def test_high_bill_of_an_estimated_month_that_was_not_higher():
    estimated = months.shift(this_month(), -2)  # 118 kWh, estimated; 195 kWh the month before
    messages, _ = fulfil(request="bill_too_high", month=months.label(estimated), **VERIFIED_ZHANG_WEI)
    (message,) = messages
    label = months.label(estimated)
    assert f"{label}用电118度，电费62.34元" in message and "少了77度" in message
    assert reply("high_bill_not_high", month=label) in message
    assert reply("high_bill_this_month_estimated", month=label) in message
    assert "档" not in message
    assert message.endswith(reply("high_bill_next_step_estimated"))


def test_high_bill_with_more_usage_and_no_estimate():
    li_na = {"account_number": "3201000002", "verified_account": "3201000002", "identity_proof": "verified"}
    messages, _ = fulfil(request="bill_too_high", **li_na)
    (message,) = messages
    latest, year_ago = months.shift(this_month(), -1), months.shift(this_month(), -13)
    assert f"{months.label(latest)}用电158度" in message and "多了9度" in message
    assert f"去年同期（{months.label(year_ago)}）用电160度" in message
    assert reply("high_bill_usage_up", change_kwh="9度") in message
    assert "估抄" not in message and "档" not in message
    assert message.endswith(reply("high_bill_next_step"))
    assert "3201000002" not in message and "李娜" not in message


def test_readings_show_six_lines_and_the_estimated_note():
    messages, events = fulfil(request="meter_dispute", **VERIFIED_ZHANG_WEI)
    (message,) = messages
    lines = [line for line in message.splitlines() if line.startswith("·")]
    assert len(lines) == 6
    assert sum("（估抄）" in line for line in lines) == 1
    assert "用电 521度" in lines[-1] and "用电 118度（估抄）" in lines[-2]
    assert f"户号{ZHANG_WEI_MASKED}最近6次抄表记录" in message
    assert "按往月用量估算" in message
    # the next step is the bot's own: it offers to book the meter verification (the turn's one question)
    assert any(message.endswith(offer) for offer in variants("offer_meter_verification"))
    assert message.count("？") == 1 and "校验" in message
    assert slot_values(events) == {"identity_proof": None, "offer": "meter_verification"}
    assert_nothing_personal(messages)


@pytest.mark.parametrize("request_name", NEEDS_IDENTITY)
def test_locked_identity_gets_no_bill(request_name):
    messages, events = fulfil(
        request=request_name, account_number=ZHANG_WEI, locked_account=ZHANG_WEI, identity_proof="locked"
    )
    assert_locked_and_handed_over(messages, events)


def test_the_lock_of_another_account_does_not_stop_a_verified_one():
    messages, _ = fulfil(request="query_bill", locked_account="3201000002", **VERIFIED_ZHANG_WEI)
    (message,) = messages
    assert message.startswith(f"户号{ZHANG_WEI_MASKED}，")


@pytest.mark.parametrize("verified_account", [None, "3201000002"])
@pytest.mark.parametrize("request_name", ["query_bill", "bill_too_high", "meter_dispute"])
def test_unverified_account_gets_nothing_disclosed(request_name, verified_account):
    """The identity check could not run: a person calls back, and checks who they call first."""
    messages, events = fulfil(request=request_name, account_number=ZHANG_WEI, verified_account=verified_account)
    ticket = callback_ticket(events)
    (message,) = messages
    assert_told_callback(message, ticket)
    assert ZHANG_WEI_MASKED not in message and not re.search(r"\d(度|元)", message)
    assert_nothing_personal(messages)
    assert ticket.account_number == ZHANG_WEI  # as the customer gave it, for the agent
    assert ticket.facts["身份核验"].startswith("未完成")
    assert slot_values(events)["identity_proof"] is None


def test_no_request_asks_what_the_customer_wants():
    messages, events = fulfil(request=None, **VERIFIED_ZHANG_WEI)
    assert len(messages) == 1 and messages[0] in variants("what_service")
    assert slot_values(events) == {"identity_proof": None}


def test_an_unexpected_error_while_answering_is_never_silent(monkeypatch, caplog):
    monkeypatch.setenv("TARIFF_TIERS", "not a tariff")  # a configuration the answer cannot use
    with caplog.at_level(logging.ERROR, logger="actions.requests"):
        messages, events = fulfil(request="bill_too_high", **VERIFIED_ZHANG_WEI)
    assert messages == [reply("service_unavailable")]
    assert "95598" in messages[0]
    assert slot_values(events) == {"identity_proof": None}
    assert "answering bill_too_high failed" in caplog.text


# --- action_fulfil_request: outages -------------------------------------------------------------


def test_outage_by_account_finds_the_fault_without_naming_the_area():
    messages, _ = fulfil(request="query_outage", account_number=ZHANG_WEI)
    (message,) = messages
    # before any identity check, the reply does not say where the account is
    assert message.startswith("您户号所在的片区目前确实停电了")
    assert "光明路" not in message
    assert "原因是10千伏线路故障（大风刮断树枝搭落线路）" in message
    assert "预计" in message and "恢复供电" in message
    assert "跳闸" not in message
    assert_nothing_personal(messages)


def test_outage_by_account_with_a_planned_outage_does_not_name_the_area():
    messages, _ = fulfil(request="query_outage", account_number="3201000002")
    (message,) = messages
    assert message.startswith("目前没有查到您户号所在的片区有正在进行的停电")
    assert "提醒您：您户号所在的片区计划于明天08:00至16:00停电" in message
    assert "幸福里" not in message
    assert_nothing_personal(messages)


def test_outage_of_a_named_area_names_it():
    messages, _ = fulfil(request="query_outage", area="光明路")
    (message,) = messages
    assert message.startswith("光明路一带目前确实停电了")
    assert "原因是10千伏线路故障（大风刮断树枝搭落线路）" in message


def test_outage_of_an_area_with_a_planned_outage_tomorrow():
    messages, _ = fulfil(request="query_outage", area="幸福里")
    (message,) = messages
    assert message.startswith("目前没有查到幸福里一带有正在进行的停电")
    assert "幸福里一带计划于明天08:00至16:00停电，原因是10千伏线路设备检修" in message


def test_outage_of_an_area_without_outages_gives_the_tripped_switch_advice():
    messages, events = fulfil(request="query_outage", area="和平路")
    (message,) = messages
    # no outage known: the tripped-switch advice, then the bot offers to file the fault report itself
    assert message in {
        f"{advice}\n{offer}"
        for advice in variants("outage_none", area="和平路一带")
        for offer in variants("offer_fault_report")
    }
    assert "跳闸" in message and "计划于" not in message
    assert message.count("？") == 1 and message.endswith("需要吗？")
    assert slot_values(events) == {"identity_proof": None, "offer": "fault"}


def test_outage_with_only_a_planned_outage_ahead_also_offers_the_fault_report():
    messages, events = fulfil(request="query_outage", area="幸福里")
    (message,) = messages
    assert "幸福里一带计划于明天08:00至16:00停电" in message
    assert any(message.endswith(offer) for offer in variants("offer_fault_report"))
    assert slot_values(events)["offer"] == "fault"


def test_outage_under_way_offers_nothing():
    messages, events = fulfil(request="query_outage", area="光明路")
    assert not any(offer in messages[0] for offer in variants("offer_fault_report"))
    assert "offer" not in slot_values(events)


def test_outage_of_an_unknown_place():
    messages, events = fulfil(request="query_outage", area="月亮湾")
    assert messages == [reply("outage_unknown_place", place="月亮湾")]
    assert "暂时没有“月亮湾”的停电数据" in messages[0] and "登记故障报修" in messages[0]
    assert slot_values(events) == {"identity_proof": None, "offer": "fault"}


def test_outage_by_an_unknown_account_masks_it():
    messages, _ = fulfil(request="query_outage", account_number="3201999999")
    assert messages == [reply("account_not_found", account="3201****99")]
    assert "3201999999" not in messages[0]


def test_fault_outage_whose_cause_is_not_known_yet(outage_in_hepinglu):
    now = clock.now()
    outage_in_hepinglu(
        kind="fault",
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=3),
        cause=None,
        status="in_progress",
    )
    messages, _ = fulfil(request="query_outage", area="和平路")
    (message,) = messages
    assert message.startswith("和平路一带目前确实停电了")
    assert "原因还在排查" in message and "原因是" not in message
    assert "预计" in message and "None" not in message


def test_fault_outage_without_an_estimate(outage_in_hepinglu):
    now = clock.now()
    outage_in_hepinglu(
        kind="fault", starts_at=now - timedelta(minutes=30), ends_at=None, cause="变压器故障", status="in_progress"
    )
    messages, _ = fulfil(request="query_outage", area="和平路")
    (message,) = messages
    assert message.startswith("和平路一带目前确实停电了")
    assert "原因是变压器故障" in message and "恢复时间还在评估" in message


def test_fault_outage_past_its_estimate(outage_in_hepinglu):
    now = clock.now()
    outage_in_hepinglu(
        kind="fault",
        starts_at=now - timedelta(hours=5),
        ends_at=now - timedelta(minutes=20),
        cause=None,
        status="in_progress",
    )
    messages, _ = fulfil(request="query_outage", area="和平路")
    (message,) = messages
    assert message.startswith("和平路一带从")
    assert "原因还在排查" in message and "原先预计" in message and "95598" in message


def test_planned_outage_under_way(outage_in_hepinglu):
    now = clock.now()
    outage_in_hepinglu(
        kind="planned",
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=2),
        cause="线路改造",
        status="in_progress",
    )
    messages, _ = fulfil(request="query_outage", area="和平路")
    (message,) = messages
    assert message.startswith("和平路一带正在进行计划停电（线路改造）")
    assert "预计" in message


def test_planned_outage_past_its_end(outage_in_hepinglu):
    now = clock.now()
    starts, ends = now - timedelta(hours=4), now - timedelta(hours=1)
    outage_in_hepinglu(kind="planned", starts_at=starts, ends_at=ends, cause="线路改造", status="in_progress")
    messages, _ = fulfil(request="query_outage", area="和平路")
    assert len(messages) == 1
    assert messages[0] in variants(
        "outage_planned_overdue", area="和平路一带", cause="线路改造", window=window(starts, ends, clock.now())
    )
    assert "已超过原定结束时间" in messages[0] and "95598" in messages[0]


# --- the company's system is down -----------------------------------------------------------


@pytest.mark.usefixtures("company_system_down")
@pytest.mark.parametrize(
    "slots, category, facts",
    [
        pytest.param(
            {"request": "query_bill", "month": "8月", **VERIFIED_ZHANG_WEI},
            "tariff_billing",
            {"待答复的问题": "查电费", "月份": "8月", "身份核验": "已通过"},
            id="bill",
        ),
        pytest.param(
            {"request": "bill_too_high", **VERIFIED_ZHANG_WEI}, "tariff_billing", {"身份核验": "已通过"}, id="high-bill"
        ),
        pytest.param({"request": "meter_dispute", **VERIFIED_ZHANG_WEI}, "metering", {}, id="readings"),
        pytest.param(
            {"request": "query_outage", "area": "光明路"},
            "outage",
            {"待答复的问题": "停电情况", "地区": "光明路"},
            id="outage-by-area",
        ),
        pytest.param({"request": "query_outage", "account_number": ZHANG_WEI}, "outage", {}, id="outage-by-account"),
    ],
)
def test_system_down_files_a_callback_ticket_and_asks_for_a_phone(slots, category, facts):
    sender = f"test-{uuid.uuid4().hex[:12]}"
    messages, events = fulfil(sender, **slots)
    ticket = callback_ticket(events)
    (message,) = messages
    assert_told_callback(message, ticket)
    assert message.endswith(reply("contact_none"))
    assert_nothing_personal(messages)
    assert (ticket.subject, ticket.request_type, ticket.category) == ("callback", "enquiry", category)
    assert ticket.conversation_id == sender and ticket.callback_phone is None
    assert ticket.account_number == slots.get("account_number")
    assert ticket.place == slots.get("area")
    assert facts.items() <= ticket.facts.items()
    # no phone is known: the ticket form asks for one, and nothing else
    assert_escalated(events, "callback", None)
    assert slot_values(events)["complaint_category"] == category and slot_values(events)["callback_phone"] is None


@pytest.mark.usefixtures("company_system_down")
def test_system_down_asked_again_in_the_conversation_files_no_second_ticket():
    sender = f"test-{uuid.uuid4().hex[:12]}"
    _, first = fulfil(sender, request="query_bill", **VERIFIED_ZHANG_WEI)
    messages, again = fulfil(sender, request="query_bill", month="8月", **VERIFIED_ZHANG_WEI)
    ticket = callback_ticket(first)
    (message,) = messages
    assert slot_values(again)["filed_ticket"] == ticket.number
    due = moment(ticket.sla_due_at, clock.now())
    assert message in variants("callback_existing", number=ticket.number, due=due, contact=reply("contact_none"))
    assert followups(again) == []  # the phone was asked for already: not again
    assert [t.number for t in conversation_tickets(tickets_db(), sender)] == [ticket.number]
    assert [e.kind for e in ticket_events(tickets_db(), ticket.number)] == ["filed", "note"]
    # another matter in the same conversation is a ticket of its own
    _, outage = fulfil(sender, request="query_outage", area="光明路")
    assert callback_ticket(outage).number != ticket.number


@pytest.mark.usefixtures("company_system_down")
def test_system_down_with_a_phone_typed_earlier_files_it_and_asks_nothing():
    sender = f"test-{uuid.uuid4().hex[:12]}"
    tracker = make_tracker(
        {"request": "query_outage", "area": "光明路"}, "停电了，我电话13911112222", "query_outage", sender=sender
    )
    messages, events = run(ActionFulfilRequest(), tracker)
    ticket = callback_ticket(events)
    (message,) = messages
    assert_told_callback(message, ticket)
    assert message.endswith(reply("contact_given", phone="139****2222"))
    assert ticket.callback_phone == "13911112222"
    assert followups(events) == [] and "ticket_subject" not in slot_values(events)


def test_system_slow_answers_within_the_client_timeout_with_a_callback(company_system_slow):
    timeout = company_system_slow
    started = time.monotonic()
    messages, events = fulfil(request="query_outage", area="光明路")
    elapsed = time.monotonic() - started
    assert_told_callback(messages[0], callback_ticket(events))
    # one call to the company's system, tried twice (UTILITY_RETRIES=1), each cut at the timeout
    assert 2 * timeout <= elapsed < 2 * timeout + 1.5


@pytest.mark.usefixtures("company_system_down")
def test_system_down_and_ticket_store_down_says_so_and_gives_no_number(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}")  # a folder: the database cannot be opened
    messages, events = fulfil(request="query_outage", area="光明路")
    assert messages == [reply("service_unavailable")]
    assert "95598" in messages[0] and "GD" not in messages[0]
    assert slot_values(events) == {"identity_proof": None}


@pytest.mark.usefixtures("company_system_down")
def test_system_down_keeps_the_number_and_then_discloses_nothing():
    turn = form_turn(BILL_ASKS_NUMBER, "3201000001")
    assert turn.slots["account_number"] == ZHANG_WEI
    assert turn.slots["identity_proof"] is None
    assert turn.slots["verified_account"] is None
    assert turn.asks == "identity_proof"
    assert turn.messages == []

    answered = form_turn({**turn.slots, "requested_slot": "identity_proof"}, "张伟")
    assert slot_values(answered.events)["identity_proof"] == "unchecked"
    assert answered.slots["verified_account"] is None
    assert answered.asks is None
    assert answered.messages == []
    assert attempts_left(ZHANG_WEI) == identity.MAX_ATTEMPTS  # not the customer's failure

    messages, events = fulfil(**answered.slots)
    assert_told_callback(messages[0], callback_ticket(events))
    assert ZHANG_WEI_MASKED not in messages[0] and "元" not in messages[0]


@pytest.mark.usefixtures("bot_database_down")
def test_bot_database_down_the_identity_cannot_be_checked_and_nothing_is_disclosed():
    turn = form_turn(BILL_ASKS_NUMBER, "3201000001")
    assert turn.slots["account_number"] == ZHANG_WEI
    assert turn.slots["locked_account"] is None
    assert turn.asks == "identity_proof"
    assert turn.messages == []

    answered = form_turn({**turn.slots, "requested_slot": "identity_proof"}, "张伟")
    assert slot_values(answered.events)["identity_proof"] == "unchecked"
    assert answered.slots["verified_account"] is None
    assert answered.asks is None
    assert answered.messages == []

    messages, _ = fulfil(**answered.slots)
    assert messages == [reply("service_unavailable")]
    assert ZHANG_WEI_MASKED not in messages[0] and "元" not in messages[0]


@pytest.mark.usefixtures("company_system_down")
def test_system_down_set_request_still_remembers_the_request():
    _, events = run(ActionSetRequest(), make_tracker({}, "光明路那边停电了吗", "query_outage"))
    assert slot_values(events) == {"request": "query_outage", "month": None, "area": None}


@pytest.mark.usefixtures("company_system_down")
def test_system_down_set_request_keeps_the_place_as_said():
    text = "光明路18号停电了吗"
    tracker = make_tracker({}, text, "query_outage", entities=[entity("address", "光明路18号", text)])
    _, events = run(ActionSetRequest(), tracker)
    assert slot_values(events) == {"request": "query_outage", "month": None, "area": "光明路18号"}


# --- action_fallback ------------------------------------------------------------------------------


def fallback_turn(text: str, reply_text: str) -> list[dict[str, Any]]:
    return [
        {"event": "action", "name": "action_listen"},
        {"event": "user", "text": text, "parse_data": {"intent": {"name": "nlu_fallback"}}},
        {"event": "action", "name": "action_fallback"},
        {"event": "bot", "text": reply_text},
    ]


def test_first_fallback_asks_to_rephrase():
    messages, events = run(ActionFallback(), make_tracker({}, "啊这个那个", "nlu_fallback"))
    assert len(messages) == 1 and messages[0] in variants("ask_rephrase")
    assert events == []


def test_second_consecutive_fallback_with_words_hands_over_to_a_person():
    history = fallback_turn("啊这个那个", variants("ask_rephrase")[0])
    messages, events = run(ActionFallback(), make_tracker({}, "就是那个嘛", "nlu_fallback", history=history))
    assert len(messages) == 1 and messages[0] in variants("fallback_handoff")
    assert "转人工" in messages[0]
    assert_escalated(events, "handoff", "fallbacks")


def test_second_fallback_hands_over_when_only_the_first_message_had_words():
    history = fallback_turn("啊这个那个", variants("ask_rephrase")[0])
    messages, events = run(ActionFallback(), make_tracker({}, "🤔", "nlu_fallback", history=history))
    assert len(messages) == 1 and messages[0] in variants("fallback_handoff")
    assert_escalated(events, "handoff", "fallbacks")


def test_two_emoji_only_fallbacks_do_not_call_a_person():
    history = fallback_turn("😀😀", variants("ask_rephrase")[0])
    messages, events = run(ActionFallback(), make_tracker({}, "？？👍", "nlu_fallback", history=history))
    assert len(messages) == 1 and messages[0] in variants("fallback_again")
    assert "人工" in messages[0]  # the way to a person is still named
    assert events == []


def test_fallback_inside_a_form_lets_the_form_ask_again():
    history = fallback_turn("啊这个那个", variants("ask_rephrase")[0])
    tracker = make_tracker(
        {"requested_slot": "callback_phone"}, "就是那个嘛", "nlu_fallback", history=history, active_loop="ticket_form"
    )
    messages, events = run(ActionFallback(), tracker)
    assert len(messages) == 1 and messages[0] in variants("form_not_understood")
    assert events == []


def test_fallback_after_an_understood_turn_asks_to_rephrase_again():
    history = [
        *fallback_turn("啊这个那个", variants("ask_rephrase")[0]),
        {"event": "action", "name": "action_listen"},
        {"event": "user", "text": "你好", "parse_data": {"intent": {"name": "greet"}}},
        {"event": "action", "name": "utter_greet"},
    ]
    messages, _ = run(ActionFallback(), make_tracker({}, "就是那个嘛", "nlu_fallback", history=history))
    assert len(messages) == 1 and messages[0] in variants("ask_rephrase")


# --- replies avoid repeating themselves --------------------------------------------------------


@pytest.mark.parametrize("said_before", [0, 1])
def test_reply_prefers_the_variant_not_yet_said(said_before):
    variants = catalogue()["ask_account_number_bill"]
    assert len(variants) == 2
    history = [{"event": "bot", "text": variants[said_before]}]
    tracker = make_tracker({"request": "query_bill"}, "查电费", "query_bill", history=history)
    said = [run(ActionAskAccountNumber(), tracker)[0] for _ in range(12)]
    assert said == [[variants[1 - said_before]]] * 12
