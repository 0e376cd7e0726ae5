"""Journeys that end in a ticket, run turn by turn against the real demo database.

Each test plays a conversation as Rasa would run it: the customer's message (with the
slots its entities fill and the ones action_read_turn sets on every message), then the
actions the rules in data/rules.yml run for it — action_open_ticket, the ticket form's
validation and its next question, action_file_ticket once the form is done. Tickets are
really filed (in the test SQLite database, as in tests/test_actions.py) and read back
with bot.tickets.service. Every turn must say something: no customer is left in silence
and no turn asks more than one question (Chat.says and the `start` fixture check both for
every turn of every conversation).
"""

from __future__ import annotations

import asyncio
import inspect
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import delete
from sqlalchemy import inspect as inspect_schema

from actions.empathy import ActionAcknowledge
from actions.fallback import ActionFallback
from actions.handoff import (
    ActionAgentReply,
    ActionHandBack,
    ActionHandoffResolved,
    ActionRecordSatisfaction,
    ActionRelayToAgent,
)
from actions.requests import ActionFulfilRequest, ActionSetRequest
from actions.tickets import (
    ActionAcceptOffer,
    ActionAskCallbackPhone,
    ActionAskComplaintCategory,
    ActionAskComplaintText,
    ActionAskPlace,
    ActionAskPreferredTime,
    ActionDeclineOffer,
    ActionFileTicket,
    ActionOpenTicket,
    ValidateTicketForm,
)
from actions.turn import ActionReadTurn
from bot import clock, models
from bot.db import engine_for, session_factory
from bot.dialogue import bot_texts
from bot.frustration import UPSET
from bot.handoff import service as handoff
from bot.known_customer import vouch
from bot.replies import catalogue, render_scripted, scripted
from bot.tickets.categories import CATEGORIES, STATUSES
from bot.tickets.records import Ticket
from bot.tickets.service import conversation_tickets, ticket_events, ticket_transcript, tickets_db
from bot.utility import _build
from tests.test_actions import DOMAIN, entity, initial_slots, slot_values, variants

NUMBER = re.compile(r"GD\d{12}")
WITHIN = re.compile(r"\d+(?:分钟|小时(?:\d+分钟)?|天)内")
ZHANG_WEI, LI_NA, WANG_QIANG = "3201000001", "3201000002", "3201000003"
ASKS: dict[str, type[Action]] = {
    "complaint_text": ActionAskComplaintText,
    "complaint_category": ActionAskComplaintCategory,
    "callback_phone": ActionAskCallbackPhone,
    "place": ActionAskPlace,
    "preferred_time": ActionAskPreferredTime,
}


@pytest.fixture(autouse=True)
def demo_database(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The actions read the demo data and file tickets in the test SQLite database."""
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("UTILITY_BACKEND", "sql")
    monkeypatch.delenv("TARIFF_TIERS", raising=False)
    monkeypatch.delenv("HELPDESK_URL", raising=False)
    for name in ("TICKET_SLA_URGENT_MINUTES", "TICKET_SLA_HIGH_MINUTES", "TICKET_SLA_NORMAL_MINUTES"):
        monkeypatch.delenv(name, raising=False)
    _build.cache_clear()
    with session_factory(sqlite_url).begin() as session:
        session.execute(delete(models.IdentityFailure))
    yield sqlite_url
    _build.cache_clear()


# --- a conversation, turn by turn ------------------------------------------------------------


@dataclass
class Chat:
    """One customer's conversation: the events Rasa would keep, and the slots they set."""

    sender: str = field(default_factory=lambda: f"journey-{uuid.uuid4().hex[:16]}")
    slots: dict[str, Any] = field(default_factory=initial_slots)
    events: list[dict[str, Any]] = field(default_factory=list)
    loop: str | None = None
    latest: dict[str, Any] = field(default_factory=dict)
    turns: list[list[str]] = field(default_factory=list)  # what the bot said after each message
    buttons: list[list[dict[str, Any]]] = field(default_factory=list)

    @property
    def said(self) -> list[str]:
        """What the bot has said since the customer's latest message."""
        return self.turns[-1]

    def says(
        self,
        text: str,
        intent: str,
        entities: list[dict[str, Any]] | None = None,
        metadata: dict[str, Any] | None = None,
        **candidates: Any,
    ) -> Chat:
        """The customer's message; the slots its entities fill (`candidates`, as the
        domain's from_entity mappings would); then action_read_turn's slots (frustration,
        a stale offer dropped), as Rasa's action_extract_slots adds them."""
        if self.turns:
            self.check_turn()
        self.latest = {
            "text": text,
            "intent": {"name": intent, "confidence": 0.93},
            "entities": entities or [],
            "metadata": metadata or {},
        }
        user = {"event": "user", "text": text, "parse_data": self.latest, "input_channel": "rest"}
        self.events += [{"event": "action", "name": "action_listen"}, {**user, "timestamp": time.time()}]
        self.turns.append([])
        self._apply([{"event": "slot", "name": name, "value": value} for name, value in candidates.items()])
        self._run(ActionReadTurn(), record=False)
        return self

    def check_turn(self) -> None:
        """The latest turn said something (unless an agent has the conversation), and asked
        one question at most (no interrogation)."""
        if "action_relay_to_agent" in self._actions_since_the_customer():
            return
        assert self.said, f"the bot said nothing after {self.latest.get('text')!r}"
        questions = sum(m.count("？") + m.count("?") for m in self.said)
        assert questions <= 1, f"{questions} questions in one turn: {self.said}"

    def run(self, action: Action) -> list[dict[str, Any]]:
        """Runs one action as the action server would; its events join the conversation."""
        return self._run(action)

    def utter(self, response: str) -> None:
        """A domain.yml response a rule utters (a variant not said before)."""
        text = render_scripted(response, avoid=bot_texts(self.events))
        self.events += [{"event": "action", "name": response}, {"event": "bot", "text": text}]
        self.turns[-1].append(text)

    def form(self) -> list[dict[str, Any]]:
        """One step of the ticket form: validation, then its next question, or, once it is
        done, action_file_ticket (the rule "the ticket form is done, file the ticket")."""
        if self.loop != "ticket_form":
            self.loop = "ticket_form"
            self.events.append({"event": "active_loop", "name": "ticket_form"})
        events = self._run(ValidateTicketForm(), record=False)
        asking = self.slots.get("requested_slot")
        if asking:
            return events + self._run(ASKS[asking]())
        self.loop = None
        self.events.append({"event": "active_loop", "name": None})
        return events + self._run(ActionFileTicket())

    def tracker(self) -> Tracker:
        loop = {"name": self.loop} if self.loop else {}
        slots, events = dict(self.slots), list(self.events)
        return Tracker(self.sender, slots, self.latest, events, False, None, loop, "action_listen")

    def tickets(self) -> list[Ticket]:
        return conversation_tickets(tickets_db(), self.sender, open_only=False)

    def ticket(self) -> Ticket:
        (ticket,) = self.tickets()
        return ticket

    def _run(self, action: Action, record: bool = True) -> list[dict[str, Any]]:
        dispatcher = CollectingDispatcher()
        tracker = self.tracker()
        if inspect.iscoroutinefunction(action.run):
            events = asyncio.run(action.run(dispatcher, tracker, DOMAIN))
        else:
            events = action.run(dispatcher, tracker, DOMAIN)
        if record:
            self.events.append({"event": "action", "name": action.name()})
        for message in dispatcher.messages:
            self.events.append({"event": "bot", "text": message["text"], "timestamp": time.time()})
            self.turns[-1].append(message["text"])
            if message.get("buttons"):
                self.buttons.append(message["buttons"])
        self._apply(events)
        return events

    def _actions_since_the_customer(self) -> list[str]:
        names = []
        for event in reversed(self.events):
            if event.get("event") == "user":
                break
            if event.get("event") == "action":
                names.append(event["name"])
        return names

    def _apply(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            self.events.append(event)
            if event.get("event") == "slot":
                self.slots[event["name"]] = event["value"]


@pytest.fixture
def start() -> Iterator[Callable[..., Chat]]:
    """Starts conversations (with slots already set earlier in them); afterwards, every
    turn of every one of them must have had a reply."""
    started: list[Chat] = []

    def new(**slots: Any) -> Chat:
        chat = Chat()
        chat.slots.update(slots)
        started.append(chat)
        return chat

    yield new
    for chat in started:
        if chat.turns:
            chat.check_turn()


@pytest.fixture
def after_hours(monkeypatch) -> None:
    """Outside the agents' online hours a handoff is a callback: the form asks for a phone."""
    now = clock.now()
    opens, closes = now + timedelta(hours=1), now + timedelta(hours=2)
    monkeypatch.setenv("HANDOFF_HOURS", f"{opens:%H}:00-{closes:%H}:00")


def assert_filed_reply(message: str, ticket: Ticket) -> None:
    """A filed ticket's reply: its number (GD + 12 digits) and the deadline in plain words."""
    assert NUMBER.search(message) and ticket.number in message
    assert WITHIN.search(message), f"no deadline in: {message}"
    assert f"{ticket.sla_due_at:%H:%M}前" in message


def followups(events: list[dict[str, Any]]) -> list[str]:
    return [e["name"] for e in events if e.get("event") == "followup"]


def is_variant(text: str, key: str, **values: Any) -> bool:
    """`text` is one of the variants of the reply `key`, filled with `values`."""
    return text in variants(key, **values)


def has_variant(text: str, key: str, **values: Any) -> bool:
    return any(variant in text for variant in variants(key, **values))


def ends_with_variant(text: str, key: str, **values: Any) -> bool:
    return any(text.endswith(variant) for variant in variants(key, **values))


def said_only(chat: Chat, key: str, **values: Any) -> bool:
    """The bot's whole answer to the latest message was one variant of `key`."""
    return len(chat.said) == 1 and is_variant(chat.said[0], key, **values)


def empathy_line(text: str, topic: str | None, next_key: str, **values: Any) -> bool:
    """`text` is a variant of utter_empathy_<topic> (any topic for None) ending with a
    variant of `next_key`: feelings first, then what the bot does now."""
    ends = [n for n in variants(next_key, **values) if text.endswith(n)]
    if not ends:
        return False
    head = text[: -len(ends[0])]
    names = [f"utter_empathy_{topic}"] if topic else [n for n in scripted() if n.startswith("utter_empathy_")]
    for template in (t for name in names for t in scripted()[name]):
        pattern = re.escape(template.replace("{next}", "")).replace(re.escape("{about}"), ".*")
        if re.fullmatch(pattern, head):
            return True
    return False


def kinds(ticket: Ticket) -> list[str]:
    return [event.kind for event in ticket_events(tickets_db(), ticket.number)]


def open_complaint(chat: Chat, text: str, **candidates: Any) -> Chat:
    """The rule for complain: action_open_ticket, then the ticket form."""
    chat.says(text, "complain", **candidates)
    chat.run(ActionOpenTicket())
    chat.form()
    return chat


# --- complaints ---------------------------------------------------------------------------


def test_complaint_with_substance_guesses_the_category_and_files_after_yes(start):
    chat = open_complaint(start(), "我要投诉，抄表员态度太差了还骂人")
    empathy, question = chat.said
    assert empathy_line(empathy, "staff", "next_record_complaint")  # feelings first
    assert is_variant(question, "confirm_category", category="服务行为")
    assert chat.slots["complaint_text"] == "我要投诉，抄表员态度太差了还骂人"

    chat.says("对的", "affirm").form()
    assert len(chat.said) == 1 and is_variant(chat.said[0], "ask_callback_phone")  # no account: the phone

    chat.says("13912345678", "inform").form()
    ticket = chat.ticket()
    assert (ticket.request_type, ticket.subject, ticket.category) == ("complaint", "complaint", "staff_conduct")
    assert ticket.status == "new" and ticket.callback_phone == "13912345678"
    assert ticket.description == "我要投诉，抄表员态度太差了还骂人"
    (message,) = chat.said
    assert_filed_reply(message, ticket)
    assert message.startswith("已为您登记投诉") and "139****5678" in message and "13912345678" not in message
    assert chat.slots["filed_ticket"] == ticket.number
    assert chat.slots["ticket_subject"] is None and chat.slots["complaint_text"] is None  # the form is cleared


def test_complaint_no_to_the_guessed_category_lists_the_twelve(start):
    chat = open_complaint(start(), "我要投诉电费乱收")
    assert is_variant(chat.said[-1], "confirm_category", category="电价电费")

    chat.says("不对", "deny").form()
    assert said_only(chat, "choose_category")
    (buttons,) = chat.buttons
    assert [b["title"] for b in buttons] == list(CATEGORIES.values()) and len(buttons) == 12

    chat.says("电能计量", "inform").form()
    assert chat.slots["complaint_category"] == "metering"


def test_complaint_without_a_category_lists_the_twelve_and_takes_one_by_name(start):
    chat = open_complaint(start(), "我要投诉")
    empathy, question = chat.said
    assert empathy_line(empathy, "general", "next_record_complaint")
    assert is_variant(question, "ask_complaint_text")
    assert chat.slots["complaint_text"] is None  # "我要投诉" says nothing yet of what went wrong

    chat.says("上周三下午说好的事到现在也没个结果", "inform").form()
    assert said_only(chat, "choose_category")
    (buttons,) = chat.buttons
    assert [b["title"] for b in buttons] == list(CATEGORIES.values()) and len(buttons) == 12
    assert all(b["payload"] == b["title"] for b in buttons)

    chat.says("业扩工程", "inform").form()  # the button's payload: the category by name
    assert chat.slots["complaint_category"] == "connection_project"
    assert len(chat.said) == 1 and is_variant(chat.said[0], "ask_callback_phone")

    chat.says("不用了", "deny").form()
    ticket = chat.ticket()
    assert ticket.category == "connection_project" and ticket.callback_phone is None
    assert ticket.description == "上周三下午说好的事到现在也没个结果"
    (message,) = chat.said
    assert_filed_reply(message, ticket)
    assert has_variant(message, "contact_none")  # no phone: the ticket number is the way to follow it


def test_complaint_told_when_asked_is_guessed_too(start):
    chat = open_complaint(start(), "我要投诉")
    chat.says("抢修的人半天没来，停电一整天了", "inform").form()
    assert said_only(chat, "confirm_category", category="抢修质量")


def test_a_phone_in_the_complaint_is_used_and_not_asked(start):
    chat = open_complaint(start(), "我要投诉营业厅的人态度很差，有事打我电话139 1234 0000")
    assert chat.slots["callback_phone"] == "13912340000"
    chat.says("是的", "affirm").form()
    ticket = chat.ticket()  # filed: nothing left to ask
    assert ticket.callback_phone == "13912340000"
    (message,) = chat.said
    assert_filed_reply(message, ticket)
    assert "139****0000" in message
    assert not any(is_variant(m, "ask_callback_phone") for turn in chat.turns for m in turn)


KNOWN_ACCOUNTS = [
    pytest.param(
        {"account_number": LI_NA},
        ("confirm_phone_on_file_unverified", {}),
        ("contact_on_file_unverified", {}),
        id="account-not-verified",
    ),
    pytest.param(
        {"account_number": ZHANG_WEI, "verified_account": ZHANG_WEI},
        ("confirm_phone_on_file", {"phone": "138****0001"}),
        ("contact_on_file", {"phone": "138****0001"}),
        id="account-verified",
    ),
]
PHONE_ON_FILE = {LI_NA: "13800000002", ZHANG_WEI: "13800000001"}


@pytest.mark.parametrize(("slots", "confirm", "contact"), KNOWN_ACCOUNTS)
def test_a_complaint_from_a_known_account_confirms_the_phone_on_file_instead_of_asking(start, slots, confirm, contact):
    chat = open_complaint(start(**slots), "我要投诉，抄表员上门态度恶劣")
    chat.says("对", "affirm").form()
    key, values = confirm
    assert said_only(chat, key, **values)  # no number asked for: the one on file is offered
    assert not any(is_variant(m, "ask_callback_phone") for turn in chat.turns for m in turn)

    chat.says("可以", "affirm").form()
    ticket = chat.ticket()
    assert ticket.account_number == slots["account_number"]
    assert ticket.callback_phone == PHONE_ON_FILE[slots["account_number"]]
    (message,) = chat.said
    assert_filed_reply(message, ticket)
    key, values = contact
    assert has_variant(message, key, **values)
    for turn in chat.turns:
        for said in turn:
            assert "13800000001" not in said and "13800000002" not in said
            if "verified_account" not in slots:
                # the phone's last four digits prove the identity: never shown before the check
                assert "0002" not in said.replace(ticket.number, "") and "****" not in said


@pytest.mark.parametrize(("slots", "confirm", "contact"), KNOWN_ACCOUNTS)
def test_another_number_instead_of_the_one_on_file_is_used(start, slots, confirm, contact):
    chat = open_complaint(start(**slots), "我要投诉，抄表员上门态度恶劣")
    chat.says("对", "affirm").form()
    chat.says("打这个吧 13912345678", "inform").form()
    ticket = chat.ticket()
    assert ticket.callback_phone == "13912345678"
    assert has_variant(chat.said[0], "contact_given", phone="139****5678")


@pytest.mark.parametrize(
    ("setup", "asking"),
    [
        pytest.param([], "complaint_category", id="at-the-category"),
        pytest.param([("对", "affirm")], "callback_phone", id="at-the-phone"),
    ],
)
@pytest.mark.parametrize("leave", ["算了，不投诉了", "算了不弄了", "取消"])
def test_leaving_the_complaint_mid_form_files_nothing(start, setup, asking, leave):
    chat = open_complaint(start(), "我要投诉电费乱收")
    for text, intent in setup:
        chat.says(text, intent).form()
    assert chat.slots["requested_slot"] == asking

    events = chat.says(leave, "deny").form()
    assert said_only(chat, "ticket_form_left")
    assert chat.tickets() == []
    assert slot_values(events)["requested_slot"] is None
    assert chat.slots["ticket_subject"] is None and chat.slots["complaint_text"] is None
    assert chat.loop is None


def test_no_thanks_to_the_phone_is_not_leaving(start):
    chat = open_complaint(start(), "我要投诉，停电了打95598一直占线")
    chat.says("对", "affirm").form()
    chat.says("不用了，谢谢", "deny").form()
    ticket = chat.ticket()
    assert ticket.callback_phone is None and ticket.category == "service_channel"
    assert_filed_reply(chat.said[0], ticket)


def test_an_account_number_given_for_the_callback_is_kept(start):
    chat = open_complaint(start(), "我要投诉，营业厅的人态度很差")
    chat.says("是的", "affirm").form()
    chat.says("就打我户号登记的电话 3201 0000 02", "inform").form()
    ticket = chat.ticket()
    assert ticket.account_number == LI_NA and ticket.callback_phone == "13800000002"


def test_never_mind_the_phone_still_files_the_complaint(start):
    chat = open_complaint(start(), "我要投诉，营业厅的人态度很差")
    chat.says("是的", "affirm").form()
    chat.says("算了，电话就不留了", "deny").form()
    assert chat.ticket().callback_phone is None


def test_a_furious_complaint_is_filed_with_high_priority(start):
    chat = open_complaint(start(), "你们又停电了！！！我要投诉到12398")
    assert chat.slots["frustration"] >= UPSET
    chat.says("对", "affirm").form()
    chat.says("13911116666", "inform").form()
    # anger fades a step a turn, but the ticket keeps the worst moment
    assert chat.slots["frustration"] < UPSET
    ticket = chat.ticket()
    assert ticket.frustration >= UPSET
    assert ticket.priority == "high"


# --- a person, please ------------------------------------------------------------------------------


def test_request_human_with_a_known_account_files_a_handoff_at_once(start, after_hours):
    chat = start(account_number=LI_NA, request="query_outage")  # the 户号 given for an outage query
    chat.says("转人工", "request_human")
    chat.run(ActionOpenTicket())
    chat.form()
    ack, filed = chat.said
    assert is_variant(ack, "handoff_ack")
    ticket = chat.ticket()
    assert (ticket.request_type, ticket.subject) == ("enquiry", "handoff")
    assert ticket.account_number == LI_NA and ticket.callback_phone == "13800000002"
    assert_filed_reply(filed, ticket)
    assert "不是人工客服在线时间" in filed  # outside the online hours: a callback
    assert has_variant(filed, "contact_on_file_unverified")
    assert "escalated" in kinds(ticket)
    (escalated,) = (e for e in ticket_events(tickets_db(), ticket.number) if e.kind == "escalated")
    assert escalated.detail == {"reason": "request_human"}


def test_request_human_without_an_account_asks_the_phone(start, after_hours):
    chat = start()
    chat.says("我要找人工客服", "request_human")
    chat.run(ActionOpenTicket())
    chat.form()
    ack, question = chat.said
    assert is_variant(ack, "handoff_ack") and is_variant(question, "ask_callback_phone")
    assert chat.tickets() == []

    chat.says("13911112222", "inform").form()
    ticket = chat.ticket()
    assert ticket.subject == "handoff" and ticket.callback_phone == "13911112222"
    assert_filed_reply(chat.said[0], ticket)
    assert "139****2222" in chat.said[0]


def test_an_upset_request_for_a_person_hears_empathy_first(start, after_hours):
    chat = start(account_number=LI_NA)
    chat.says("什么破服务！！！转人工", "request_human")
    assert chat.slots["frustration"] >= UPSET
    chat.run(ActionOpenTicket())
    chat.form()
    empathy, filed = chat.said
    assert empathy_line(empathy, None, "next_handoff")
    assert_filed_reply(filed, chat.ticket())


def test_a_person_asked_for_mid_complaint_takes_over_with_what_was_said(start, after_hours):
    chat = open_complaint(start(account_number=LI_NA), "我要投诉")
    chat.says("转人工", "request_human").form()
    ticket = chat.ticket()
    assert ticket.subject == "handoff"
    assert "我要投诉" in ticket.description
    assert_filed_reply(chat.said[0], ticket)


def test_identity_locked_hands_over_and_asks_a_phone_not_the_one_on_file(start, after_hours):
    chat = start(request="query_bill", account_number=ZHANG_WEI, locked_account=ZHANG_WEI)
    chat.says("3201000001", "inform", account_number=ZHANG_WEI)
    events = chat.run(ActionFulfilRequest())
    assert followups(events) == ["ticket_form"]
    chat.form()
    locked, question = chat.said
    assert is_variant(locked, "identity_locked")
    assert is_variant(question, "ask_callback_phone")  # the phone on file is not used: nobody proved it

    chat.says("13911115555", "inform").form()
    ticket = chat.ticket()
    assert ticket.subject == "handoff" and ticket.callback_phone == "13911115555"
    assert ticket_events(tickets_db(), ticket.number)[1].detail == {"reason": "identity_locked"}
    (message,) = chat.said
    assert_filed_reply(message, ticket)
    assert "139****5555" in message and "0001" not in message


def test_two_fallbacks_with_words_hand_over_to_a_person(start, after_hours):
    chat = start()
    chat.says("那个那个就是那个", "nlu_fallback").run(ActionFallback())
    assert said_only(chat, "ask_rephrase")
    chat.says("我说的是上回那件事", "nlu_fallback")
    events = chat.run(ActionFallback())
    assert followups(events) == ["ticket_form"]
    chat.form()
    handoff, question = chat.said
    assert is_variant(handoff, "fallback_handoff") and is_variant(question, "ask_callback_phone")

    chat.says("13911117777", "inform").form()
    ticket = chat.ticket()
    assert ticket.subject == "handoff"
    assert ticket_events(tickets_db(), ticket.number)[1].detail == {"reason": "fallbacks"}
    assert "我说的是上回那件事" in ticket.description
    assert_filed_reply(chat.said[0], ticket)


# --- safety hazards ----------------------------------------------------------------------------


def hazard(chat: Chat, text: str, **slots: Any) -> Chat:
    """The rule for report_hazard: the safety advice, action_open_ticket, the ticket form."""
    chat.says(text, "report_hazard", **slots)
    chat.utter("utter_hazard_safety")
    chat.run(ActionOpenTicket())
    chat.form()
    return chat


def test_a_hazard_with_its_place_is_filed_urgent_without_a_question(start):
    text = "光明路18号门口电线掉下来了，还在冒火花"
    chat = hazard(start(), text, entities=[entity("address", "光明路18号", text)])
    safety, filed = chat.said
    assert safety in scripted()["utter_hazard_safety"]  # safety first
    ticket = chat.ticket()
    assert (ticket.request_type, ticket.subject, ticket.priority) == ("fault_repair", "hazard", "urgent")
    assert ticket.place == "光明路18号" and ticket.description == text
    assert_filed_reply(filed, ticket)
    assert "45分钟内" in filed and "地点：光明路18号" in filed
    assert (ticket.sla_due_at - ticket.created_at).total_seconds() == 45 * 60


def test_a_hazard_without_a_place_asks_only_the_place(start):
    chat = hazard(start(), "电线杆倒了，电线掉在地上")
    safety, question = chat.said
    assert is_variant(question, "ask_hazard_place")
    chat.says("东门菜市场旁边的路口", "inform").form()
    ticket = chat.ticket()
    assert ticket.priority == "urgent" and ticket.place == "东门菜市场旁边的路口"
    assert_filed_reply(chat.said[0], ticket)
    assert len(chat.turns) == 2  # one question only: the place


def test_a_place_naming_a_known_area_is_kept_whole(start):
    chat = hazard(start(), "电线杆倒了，电线掉在地上")
    chat.says("光明路46号对面的路口", "inform").form()
    assert chat.ticket().place == "光明路46号对面的路口"  # not cut to the area's name: the crew needs the spot


# --- power quality -----------------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["建设街12号院3号楼", "幸福里小区7栋1204"])
def test_power_quality_asks_the_place_and_phone_then_files_supply_quality(start, address):
    chat = start()
    chat.says("家里电压太低了，空调都启动不了", "report_power_quality")
    chat.run(ActionOpenTicket())
    chat.form()
    empathy, question = chat.said
    assert empathy_line(empathy, "power_quality", "next_file_repair")
    assert is_variant(question, "ask_place")

    chat.says(address, "inform").form()
    assert len(chat.said) == 1 and is_variant(chat.said[0], "ask_callback_phone")
    chat.says("13911113333", "inform").form()
    ticket = chat.ticket()
    assert (ticket.request_type, ticket.subject, ticket.category) == ("fault_repair", "power_quality", "supply_quality")
    assert ticket.place == address and ticket.callback_phone == "13911113333"
    assert_filed_reply(chat.said[0], ticket)


def test_power_quality_of_a_known_account_files_at_once(start):
    chat = start(account_number=ZHANG_WEI, verified_account=ZHANG_WEI)
    chat.says("电压忽高忽低，冰箱烧坏了", "report_power_quality")
    chat.run(ActionOpenTicket())
    chat.form()
    _empathy, filed = chat.said
    ticket = chat.ticket()
    assert ticket.category == "supply_quality" and ticket.place == "光明路18号3单元502"
    assert_filed_reply(filed, ticket)
    assert "138****0001" in filed


# --- offers after an answer: the fault report, the meter verification ---------------------------------


def ask_outage(chat: Chat, text: str, area: str) -> Chat:
    chat.says(text, "query_outage", entities=[entity("address", area, text)])
    chat.run(ActionSetRequest())
    chat.run(ActionFulfilRequest())
    return chat


@pytest.mark.parametrize("area", ["和平路", "月亮湾"], ids=["no-outage-known", "unknown-place"])
def test_yes_to_the_fault_report_offer_files_a_fault_ticket(start, area):
    chat = ask_outage(start(), f"{area}停电了吗", area)
    assert chat.slots["offer"] == "fault"

    chat.says("好的", "affirm")
    assert chat.slots["offer"] == "fault"  # a yes answers the offer: it is not dropped
    chat.run(ActionAcceptOffer())
    chat.form()
    assert len(chat.said) == 1 and is_variant(chat.said[0], "ask_callback_phone")
    assert chat.slots["offer"] is None

    chat.says("13911114444", "inform").form()
    ticket = chat.ticket()
    assert (ticket.request_type, ticket.subject, ticket.category) == ("fault_repair", "fault", "outage")
    assert ticket.priority == "high"  # no known outage explains it
    assert ticket.place == area
    (message,) = chat.said
    assert_filed_reply(message, ticket)
    assert message.startswith("已为您登记故障报修") and "2小时内" in message


def test_yes_to_the_fault_report_of_a_known_account_files_at_once(start):
    chat = start(request="query_outage", account_number=LI_NA)
    chat.says("3201000002", "inform", account_number=LI_NA)
    chat.run(ActionFulfilRequest())
    assert chat.slots["offer"] == "fault"
    chat.says("要", "affirm")
    chat.run(ActionAcceptOffer())
    chat.form()
    ticket = chat.ticket()
    assert ticket.subject == "fault" and ticket.account_number == LI_NA
    assert_filed_reply(chat.said[0], ticket)


def test_no_to_the_fault_report_offer(start):
    chat = ask_outage(start(), "和平路停电了吗", "和平路")
    chat.says("不用", "deny").run(ActionDeclineOffer())
    assert said_only(chat, "offer_declined_fault")
    assert chat.slots["offer"] is None
    assert chat.tickets() == []


VERIFIED_ZHANG_WEI = {"account_number": ZHANG_WEI, "verified_account": ZHANG_WEI, "identity_proof": "verified"}


def readings(chat: Chat) -> Chat:
    chat.says("帮我看看电表读数", "meter_dispute")
    chat.run(ActionSetRequest())
    chat.run(ActionFulfilRequest())
    return chat


def test_yes_to_the_meter_verification_asks_the_time_and_files_it(start):
    chat = readings(start(**VERIFIED_ZHANG_WEI))
    assert ends_with_variant(chat.said[-1], "offer_meter_verification")
    assert chat.slots["offer"] == "meter_verification"

    chat.says("好的", "affirm")
    chat.run(ActionAcceptOffer())
    chat.form()
    assert said_only(chat, "ask_preferred_time")

    chat.says("周六上午", "inform").form()
    ticket = chat.ticket()
    assert (ticket.request_type, ticket.subject, ticket.category) == (
        "service_request",
        "meter_verification",
        "metering",
    )
    assert ticket.preferred_time == "周六上午" and ticket.account_number == ZHANG_WEI
    (message,) = chat.said
    assert_filed_reply(message, ticket)
    assert "您希望的时间：周六上午" in message and "5个工作日" in message and "138****0001" in message


def test_no_to_the_meter_verification(start):
    chat = readings(start(**VERIFIED_ZHANG_WEI))
    chat.says("不用了", "deny").run(ActionDeclineOffer())
    assert said_only(chat, "offer_declined_meter_verification")
    assert chat.tickets() == []


# --- paid, still no power ---------------------------------------------------------------------


def test_paid_and_still_no_power_files_an_urgent_ticket_with_the_facts(start):
    chat = start(account_number=WANG_QIANG, verified_account=WANG_QIANG, identity_proof="verified")
    chat.says("我交了电费怎么还没来电", "payment_not_restored")
    chat.run(ActionSetRequest())
    chat.run(ActionFulfilRequest())
    empathy, found, filed = chat.said
    assert empathy_line(empathy, "reconnection", "next_check")  # a grievance: empathy first, always
    assert "营业厅柜台" in found and "已经超时" in found and "非常抱歉" in found

    ticket = chat.ticket()
    assert (ticket.subject, ticket.category, ticket.priority) == (
        "reconnection_overdue",
        "meter_reading_collection",
        "urgent",
    )
    assert ticket.account_number == WANG_QIANG
    assert set(ticket.facts) == {"缴费时间", "缴费金额", "缴费渠道", "复电工单生成", "承诺复电时间", "已超时"}
    assert ticket.facts["缴费渠道"] == "营业厅柜台" and ticket.facts["缴费金额"].endswith("元")
    assert ticket.facts["缴费金额"] in found and ticket.facts["承诺复电时间"] in found
    # the apology for the broken promise is followed, in the same turn, by the ticket
    assert_filed_reply(filed, ticket)
    assert "45分钟内" in filed
    assert "138****0003" in filed and "13800000003" not in filed  # verified: the masked phone on file
    assert chat.slots["filed_ticket"] == ticket.number


# --- one ticket per matter -----------------------------------------------------------------------


def test_filing_twice_in_a_conversation_gives_one_ticket(start):
    form = {"ticket_subject": "complaint", "complaint_text": "电费多收了", "complaint_category": "tariff_billing"}
    chat = start(**form, callback_phone="none")
    chat.says("不用了", "deny")
    chat.run(ActionFileTicket())
    chat.slots.update(form, callback_phone="none")  # the same request once more (a retry, a double click)
    chat.run(ActionFileTicket())
    first, second = chat.said
    ticket = chat.ticket()  # exactly one
    assert_filed_reply(first, ticket)
    due = re.search(r"（(.+?)前）", first)[1]
    assert any(
        is_variant(second, "ticket_existing", number=ticket.number, status=STATUSES["new"], due=due, contact=contact)
        for contact in variants("contact_none")
    )
    assert kinds(ticket) == ["filed", "note"]


# --- the ticket's progress -----------------------------------------------------------------------------


def file_a_complaint(chat: Chat) -> Ticket:
    open_complaint(chat, "我要投诉，营业厅的人态度很差，电话13912340000")
    chat.says("对", "affirm").form()
    return chat.ticket()


def ask_ticket(chat: Chat, number: str) -> list[str]:
    text = f"帮我查一下工单{number}现在什么进度"
    chat.says(text, "query_ticket", entities=[entity("ticket_id", number, text)], ticket_number=number)
    chat.run(ActionSetRequest())
    chat.run(ActionFulfilRequest())
    return chat.said


def test_the_owner_asks_by_number_in_lower_case_and_gets_the_status(start):
    chat = start()
    ticket = file_a_complaint(chat)
    (message,) = ask_ticket(chat, ticket.number.lower())
    assert message.startswith(f"工单 {ticket.number}（服务行为，")
    assert "已受理" in message and f"{ticket.sla_due_at:%H:%M}前联系您" in message


def test_another_conversation_or_an_unknown_number_gets_the_same_not_found(start):
    owner = start()
    ticket = file_a_complaint(owner)
    stranger = start()
    (theirs,) = ask_ticket(stranger, ticket.number.lower())
    unknown_number = "GD209901010001"
    (unknown,) = ask_ticket(start(), unknown_number.lower())
    assert is_variant(theirs, "ticket_not_found", number=ticket.number)
    assert is_variant(unknown, "ticket_not_found", number=unknown_number)
    # one text for both, whose only difference is the number the customer typed
    templates = catalogue()["ticket_not_found"]
    assert theirs.replace(ticket.number, "{number}") in templates
    assert unknown.replace(unknown_number, "{number}") in templates
    for leaked in ("服务行为", "营业厅", "139", "已受理", STATUSES["new"]):
        assert leaked not in theirs


def test_a_bill_follow_up_after_a_ticket_was_filed_is_still_about_the_bill(start):
    chat = start(**VERIFIED_ZHANG_WEI, request="query_bill")  # the bill was asked for earlier
    file_a_complaint(chat)
    text = "那8月呢"
    chat.says(text, "inform", entities=[entity("month", "8月", text)], month="8月")
    events = chat.run(ActionSetRequest())
    chat.run(ActionFulfilRequest())
    assert slot_values(events)["request"] == "query_bill"
    assert "8月的电费是" in chat.said[0]


# --- what customers type is kept as typed, and masked where it is shown ------------------------------


def test_a_five_thousand_character_complaint_is_stored_whole(start):
    text = ("我要投诉，抄表员态度很差，" + "上门抄表时对我大声呵斥，" * 500)[:5000]
    chat = open_complaint(start(), text)
    chat.says("对", "affirm").form()
    chat.says("不用了", "deny").form()
    ticket = chat.ticket()
    assert len(ticket.description) == 5000 and ticket.description == text
    assert_filed_reply(chat.said[0], ticket)


def test_html_and_sql_in_a_complaint_are_stored_as_text(start, sqlite_url):
    text = "<script>alert('x')</script>'; DROP TABLE tickets; -- 电费多收了 <b>\"两次\"</b>"
    chat = open_complaint(start(), text)
    chat.says("对", "affirm").form()
    chat.says("不用了", "deny").form()
    ticket = chat.ticket()
    assert ticket.description == text
    assert "tickets" in inspect_schema(engine_for(sqlite_url)).get_table_names()
    assert all("<script>" not in message for turn in chat.turns for message in turn)  # never echoed back


def test_the_transcript_on_the_ticket_is_masked(start):
    chat = start()
    text = "我的户号3201000001，手机13800000001，我要投诉抄表员态度恶劣"
    open_complaint(chat, text, entities=[entity("account_number", ZHANG_WEI, text)], account_number=ZHANG_WEI)
    chat.says("对", "affirm").form()
    ticket = chat.ticket()
    lines = ticket_transcript(tickets_db(), ticket.number)
    assert [line.speaker for line in lines][:2] == ["customer", "bot"]
    assert lines[0].text == "我的户号3201****01，手机138****0001，我要投诉抄表员态度恶劣"
    assert all(line.at is not None for line in lines)
    for line in lines:
        assert "13800000001" not in line.text and "3201000001" not in line.text


# --- every turn: how upset, and whether an offer still stands -------------------------------------------


# action_read_turn runs before the dialogue decides and says nothing itself: these
# conversations stop right after it, so they are not started with `start`.


def test_read_turn_scores_an_angry_message_upset_and_a_calm_one_zero():
    angry = Chat().says("你们又停电了！！！我要投诉到12398", "complain")
    calm = Chat().says("请问怎么查电费", "query_bill")
    assert angry.slots["frustration"] >= UPSET
    assert calm.slots["frustration"] == 0


def test_read_turn_lets_anger_fade_a_step_a_turn():
    chat = Chat().says("你们又停电了！！！我要投诉到12398", "complain")
    chat.turns[-1].append("(the complaint's reply)")
    before = chat.slots["frustration"]
    chat.says("好的", "affirm")
    assert chat.slots["frustration"] == before - 1


@pytest.mark.parametrize(
    ("intent", "kept"), [("query_bill", False), ("greet", False), ("complain", False), ("affirm", True), ("deny", True)]
)
def test_read_turn_drops_a_stale_offer(intent, kept):
    chat = Chat()
    chat.slots["offer"] = "meter_verification"
    events_before = len(chat.events)
    chat.says("嗯", intent)
    assert chat.slots["offer"] == ("meter_verification" if kept else None)
    offer_events = [e for e in chat.events[events_before:] if e.get("name") == "offer"]
    assert offer_events == ([] if kept else [{"event": "slot", "timestamp": None, "name": "offer", "value": None}])


# --- frustration acknowledged --------------------------------------------------------------------------------


def test_frustration_twice_files_a_complaint_and_a_third_time_chases_it(start):
    chat = start()
    chat.says("气死我了", "express_frustration").run(ActionAcknowledge())
    (first,) = chat.said
    assert any(first.endswith(n) for n in variants("next_ask_what"))
    assert chat.tickets() == []

    chat.says("气死我了，你们到底管不管", "express_frustration")
    events = chat.run(ActionAcknowledge())
    assert followups(events) == ["ticket_form"]
    assert slot_values(events)["escalation"] == "frustration"
    chat.form()
    chat.says("停电一整天了没人来修", "inform").form()
    chat.says("不用了", "deny").form()
    ticket = chat.ticket()
    assert ticket.subject == "complaint" and ticket.category == "outage"
    assert ticket.priority == "high"  # furious: a person follows it up first
    assert ticket_events(tickets_db(), ticket.number)[1].detail == {"reason": "frustration"}
    assert_filed_reply(chat.said[0], ticket)

    chat.says("你们这效率真高啊，呵呵", "express_frustration").run(ActionAcknowledge())
    (chased,) = chat.said
    assert ends_with_variant(chased, "next_reminded", number=ticket.number)
    assert kinds(ticket)[-1] == "note"
    assert len(chat.tickets()) == 1


# --- services down ------------------------------------------------------------------------


def test_ticket_store_down_at_filing_says_so_honestly(start, tmp_path, monkeypatch, after_hours):
    """The bot's database cannot be opened (DATABASE_URL names a directory) when the ticket
    is filed: the customer is told plainly, never a number that does not exist."""
    chat = start()
    chat.says("我要找人工客服", "request_human")
    chat.run(ActionOpenTicket())
    chat.form()
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}")
    chat.says("13911112222", "inform").form()
    (reply_text,) = chat.said
    assert is_variant(reply_text, "ticket_store_down")
    assert not re.search(r"GD\d{12}", reply_text)
    assert chat.slots.get("filed_ticket") is None


@pytest.fixture
def company_down(monkeypatch) -> Iterator[None]:
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


def test_company_system_down_at_filing_files_without_the_account_details(start, company_down, after_hours):
    """The company's system does not answer: the ticket is still filed, with the 户号 the
    customer gave but no phone from the account, and the phone is asked for instead."""
    chat = start(account_number=LI_NA)
    chat.says("转人工", "request_human")
    chat.run(ActionOpenTicket())
    chat.form()
    ack, question = chat.said
    assert is_variant(question, "ask_callback_phone") and chat.tickets() == []
    chat.says("13911112222", "inform").form()
    ticket = chat.ticket()
    assert ticket.subject == "handoff" and ticket.account_number == LI_NA
    assert ticket.callback_phone == "13911112222"
    assert_filed_reply(chat.said[-1], ticket)


def unanswered_bill(chat: Chat) -> Chat:
    """The identity answer could not be checked (the company's system is down), then the
    rule for a finished account form: action_fulfil_request, which starts the ticket form."""
    chat.says("张伟", "inform")
    events = chat.run(ActionFulfilRequest())
    assert followups(events) == ["ticket_form"]
    chat.form()
    return chat


def assert_told_callback(message: str, ticket: Ticket) -> None:
    assert ticket.subject == "callback" and "没有响应" in message
    assert_filed_reply(message, ticket)


def test_company_down_files_a_callback_at_once_and_puts_the_phone_given_after_on_it(start, company_down):
    chat = unanswered_bill(start(request="query_bill", account_number=ZHANG_WEI, identity_proof="unchecked"))
    told, question = chat.said
    ticket = chat.ticket()
    assert_told_callback(told, ticket)  # the number first: the customer may leave now
    assert is_variant(question, "ask_callback_phone")  # the system that holds the phone on file is down
    assert "0001" not in told + question

    chat.says("13911112222", "inform").form()
    (noted,) = chat.said
    ticket = chat.ticket()  # still the one
    assert ticket.callback_phone == "13911112222"
    due = re.search(r"（(.+?)前）", told)[1]
    contact = variants("contact_given", phone="139****2222")[0]
    assert is_variant(noted, "callback_phone_noted", number=ticket.number, due=due, contact=contact)
    assert kinds(ticket) == ["filed", "callback_phone_changed"]
    assert chat.slots["ticket_subject"] is None and chat.slots["callback_phone"] is None

    # the same question again, the system still down: the same ticket, nothing asked
    chat.says("张伟", "inform")
    events = chat.run(ActionFulfilRequest())
    (again,) = chat.said
    assert is_variant(again, "callback_existing", number=ticket.number, due=due, contact=contact)
    assert followups(events) == []
    assert chat.ticket().number == ticket.number


@pytest.mark.parametrize(("answer", "intent"), [("不用了", "deny"), ("取消吧", "inform")])
def test_company_down_callback_without_a_phone_says_how_to_follow_it(start, company_down, answer, intent):
    chat = unanswered_bill(start(request="query_bill", account_number=ZHANG_WEI, identity_proof="unchecked"))
    number = chat.ticket().number
    chat.says(answer, intent).form()
    assert said_only(chat, "callback_no_phone", number=number)
    ticket = chat.ticket()
    assert ticket.number == number and ticket.callback_phone is None
    assert kinds(ticket) == ["filed"]


def test_a_stray_number_taken_for_a_account_does_not_stop_the_filing(start, after_hours):
    """The NLU may tag "12398" (the regulator's hotline) as a 户号; the ticket is still filed."""
    chat = start(account_number="12398")
    chat.says("转人工", "request_human")
    chat.run(ActionOpenTicket())
    chat.form()
    chat.says("13911112222", "inform").form()
    ticket = chat.ticket()
    assert ticket.account_number is None and ticket.callback_phone == "13911112222"
    assert_filed_reply(chat.said[-1], ticket)


# --- live handoff: queued at once, silent while an agent has it, back with its context ---------


def test_request_human_in_service_hours_queues_at_once_and_the_agent_answers(start):
    chat = start(account_number=LI_NA, verified_account=LI_NA, request="query_bill")
    chat.says("转人工", "request_human")
    chat.run(ActionOpenTicket())
    events = chat.form()
    ack, queued = chat.said
    ticket = chat.ticket()
    assert is_variant(ack, "handoff_ack") and ticket.subject == "handoff"
    assert queued.startswith(("已为您转接人工客服", "正在为您转接人工客服")) and ticket.number in queued
    assert "您是下一位" in queued or "您前面还有" in queued
    assert chat.slots["handoff_ticket"] == ticket.number
    (reminder,) = (e for e in events if e.get("event") == "reminder")
    assert reminder["intent"] == "EXTERNAL_handoff_reminder" and reminder["kill_on_user_msg"] is False

    chat.says("我的电费怎么这么高，13911112222找我", "bill_too_high")
    assert chat.run(ActionRelayToAgent()) == [] and chat.said == []  # the bot stays silent
    sessions = tickets_db()
    assert [m.text for m in handoff.messages(sessions, ticket.number)][-1] == "我的电费怎么这么高，139****2222找我"

    handoff.claim(sessions, ticket.number, "wang", clock.now())
    handoff.add_agent_message(sessions, ticket.number, "wang", "您好，我来帮您核对电费。", clock.now())
    chat.says("EXTERNAL: EXTERNAL_agent_reply", "EXTERNAL_agent_reply").run(ActionAgentReply())
    assert chat.said == ["【人工客服】您好，我来帮您核对电费。"]
    assert handoff.undelivered(sessions, chat.sender) == []

    handoff.end(sessions, ticket.number, "wang", clock.now(), "handed_back")
    chat.says("EXTERNAL: EXTERNAL_hand_back", "EXTERNAL_hand_back").run(ActionHandBack())
    (back,) = chat.said
    assert is_variant(back, "handed_back", number=ticket.number)
    assert chat.slots["handoff_ticket"] is None and chat.slots["verified_account"] == LI_NA


def test_a_resolved_handoff_asks_for_a_score_and_keeps_it(start):
    chat = start(account_number=LI_NA)
    chat.says("转人工", "request_human")
    chat.run(ActionOpenTicket())
    chat.form()
    ticket = chat.ticket()
    sessions = tickets_db()
    handoff.claim(sessions, ticket.number, "wang", clock.now())
    handoff.resolve(sessions, ticket.number, "wang", "已为您重新核对读数，本月电费无误。", clock.now())
    chat.says("EXTERNAL: EXTERNAL_handoff_resolved", "EXTERNAL_handoff_resolved").run(ActionHandoffResolved())
    resolution, question = chat.said
    assert ticket.number in resolution and "本月电费无误" in resolution
    assert is_variant(question, "ask_satisfaction") and chat.buttons[-1][0]["payload"] == "5"
    assert chat.slots["rating_ticket"] == ticket.number and chat.slots["handoff_ticket"] is None

    chat.says("2分，等太久了", "inform").run(ActionRecordSatisfaction())
    (thanks,) = chat.said
    assert "2分" in thanks and "回访" in thanks  # a low score is followed up
    rated = chat.ticket()
    assert (rated.satisfaction, rated.satisfaction_comment) == (2, "等太久了")
    assert chat.slots["rating_ticket"] is None


def test_a_new_request_instead_of_a_score_goes_to_the_bot(start):
    chat = start(rating_ticket="GD202611240001")
    chat.says("帮我查下停电", "query_outage")
    assert chat.slots["rating_ticket"] is None  # action_read_turn let the bot answer it
    chat.utter("utter_ok")


def test_a_handoff_that_ended_unseen_gives_the_conversation_back(start):
    """The agent's hand-back never reached the bot (Rasa was down then): the next message
    finds no live handoff and the bot takes over again instead of staying silent."""
    chat = start(handoff_ticket="GD209901010001")
    chat.says("还在吗", "inform").run(ActionRelayToAgent())
    (over,) = chat.said
    assert is_variant(over, "handoff_over") and chat.slots["handoff_ticket"] is None


def test_a_new_session_finds_the_agent_still_on_the_line(start):
    """Two idle hours start a new session without the slots; the database still says an
    agent has the conversation, so the bot stays silent and the agent gets the message."""
    chat = start(account_number=LI_NA)
    chat.says("转人工", "request_human")
    chat.run(ActionOpenTicket())
    chat.form()
    number = chat.slots["handoff_ticket"]
    chat.slots["handoff_ticket"] = None  # what the new session forgot
    chat.says("还有人在吗", "greet")
    assert chat.slots["handoff_ticket"] == number
    assert chat.run(ActionRelayToAgent()) == [] and chat.said == []
    assert handoff.messages(tickets_db(), number)[-1].text == "还有人在吗"


# --- a customer the channel knows (the website's signed-in customer, a bound WeChat follower) ---


def test_a_customer_the_channel_vouches_for_needs_no_account_or_identity_question(start, monkeypatch):
    monkeypatch.setenv("CUSTOMER_TOKEN_SECRET", "journey-secret")
    chat = start()
    chat.says("查电费", "query_bill", metadata={"customer": vouch(ZHANG_WEI, "website")})
    assert (chat.slots["account_number"], chat.slots["verified_account"]) == (ZHANG_WEI, ZHANG_WEI)
    chat.utter("utter_ok")


@pytest.mark.parametrize("secret", ["journey-secret", ""])
def test_a_forged_or_unsigned_customer_is_not_trusted(start, monkeypatch, secret):
    monkeypatch.setenv("CUSTOMER_TOKEN_SECRET", "the-other-key")
    forged = vouch(ZHANG_WEI, "wechat")  # signed with a key the bot does not have
    monkeypatch.setenv("CUSTOMER_TOKEN_SECRET", secret)
    chat = start()
    chat.says("查电费", "query_bill", metadata={"customer": forged})
    assert chat.slots.get("verified_account") is None and chat.slots.get("account_number") is None
    chat.utter("utter_ok")
