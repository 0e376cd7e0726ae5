"""The WeChat official account against the real stack: requests shaped as WeChat sends
them (the XML as the platform writes it, signed, in safe mode encrypted) to the real Rasa
server with the `wechat` channel, the real action server behind it, and WeChat's API as a
fake on loopback that records what the bot pushed."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import delete

from bot import clock
from bot.db import session_factory
from bot.handoff import desk, service
from bot.models import IdentityFailure
from bot.tickets.service import conversation_tickets, ticket_events
from bot.wechat import bindings, messages
from tests.e2e.conftest import RASA_TOKEN, WECHAT_AES_KEY, WECHAT_APP_ID, WECHAT_TOKEN, Stack
from tests.e2e.servers import Process
from tests.wechat_platform import Answer, WeChatPlatform, new_openid

NUMBER = re.compile(r"GD\d{12}")


@dataclass
class Follower:
    """One person following the official account, writing to it."""

    platform: WeChatPlatform
    stack: Stack
    openid: str
    encrypted: bool = False

    def send(self, xml: str) -> Answer:
        return self.platform.post(xml, encrypted=self.encrypted)

    def say(self, text: str) -> str | None:
        """The passive reply to a text (None: "success", the answer comes through the API)."""
        return self.platform.reply_of(self.send(self.platform.text(self.openid, text)), self.openid)

    def reply_to(self, xml: str) -> str | None:
        return self.platform.reply_of(self.send(xml), self.openid)

    def pushed(self, but_reminders: bool = False) -> list[str]:
        """What reached the follower through the API (the handoff's reminder comes 6 s on)."""
        texts = self.stack.wechat_api.texts(self.openid)
        return [t for t in texts if "客服马上就来" not in t] if but_reminders else texts

    def wait_for_push(self, predicate, timeout: float = 60) -> str:
        return self.stack.wechat_api.wait_for(self.openid, predicate, timeout)

    def user_turns(self) -> list[str]:
        """The customer's messages that reached the bot (its tracker)."""
        return [e.get("text") for e in tracker(self.stack, self.openid) if e["event"] == "user"]

    def forget_the_conversation(self) -> None:
        """A new conversation (as after two idle hours): the tracker's slots are gone."""
        request = urllib.request.Request(
            f"{self.stack.rasa_url}/conversations/{self.openid}/tracker/events?token={RASA_TOKEN}",
            json.dumps({"event": "restart"}).encode(),
            {"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200


def tracker(stack: Stack, sender: str) -> list[dict]:
    with urllib.request.urlopen(f"{stack.rasa_url}/conversations/{sender}/tracker?token={RASA_TOKEN}") as response:
        return json.load(response)["events"]


@pytest.fixture
def platform(stack: Stack) -> WeChatPlatform:
    return WeChatPlatform(f"{stack.rasa_url}/webhooks/wechat/webhook", WECHAT_TOKEN, WECHAT_AES_KEY, WECHAT_APP_ID)


@pytest.fixture
def follower(stack: Stack, platform: WeChatPlatform) -> Iterator[Follower]:
    stack.proxy.mode = "pass"
    with session_factory(stack.database_url).begin() as session:
        session.execute(delete(IdentityFailure))
    yield Follower(platform, stack, new_openid())
    stack.proxy.mode = "pass"


# --- the server URL, plain and safe mode ---------------------------------------------------------


def test_the_admin_console_verifies_the_server_url(platform: WeChatPlatform):
    query = platform.query(new_openid()) | {"echostr": "6923853196281924621"}
    query.pop("openid")
    assert platform.get(query).status == 200 and platform.get(query).body == "6923853196281924621"
    forged = query | {"signature": "da39a3ee5e6b4b0d3255bfef95601890afd80709"}
    assert platform.get(forged).status == 403


def test_a_plaintext_message_gets_a_passive_reply(follower: Follower):
    answer = follower.send(follower.platform.text(follower.openid, "电费怎么交"))
    reply = follower.platform.reply_of(answer, follower.openid)
    assert reply and "网上国网" in reply and answer.seconds < 4.6
    assert "<Encrypt>" not in answer.body
    assert follower.user_turns() == ["电费怎么交"]


def test_an_encrypted_message_gets_an_encrypted_reply(follower: Follower):
    follower.encrypted = True
    answer = follower.send(follower.platform.text(follower.openid, "电费怎么交"))
    assert "<Encrypt>" in answer.body and "网上国网" not in answer.body and "Content" not in answer.body
    reply = follower.platform.reply_of(answer, follower.openid)  # decrypted, signature checked
    assert reply and "网上国网" in reply


def test_a_slow_answer_goes_out_through_the_api(follower: Follower, stack: Stack):
    bindings.bind(session_factory(stack.database_url), follower.openid, "3201000001", clock.now())
    stack.proxy.mode = "slow"  # every call to the company's systems times out
    answer = follower.send(follower.platform.event(follower.openid, "CLICK", "QUERY_BILL"))
    assert answer.success and answer.seconds < 5  # WeChat hears "success" before its 5 s are up
    # the apology with a callback ticket's number, then the question for a phone to call back on
    pushed = follower.wait_for_push(lambda t: bool(NUMBER.search(t)))
    question = follower.wait_for_push(lambda t: "手机号" in t)
    assert follower.pushed() == [pushed, question] and "抱歉" in pushed and "没有响应" in pushed


# --- retries ---------------------------------------------------------------------------------------


def test_three_retries_of_one_message_reach_the_bot_once_and_file_one_ticket(follower: Follower, stack: Stack):
    xml = follower.platform.text(follower.openid, "转人工")
    answers = [follower.send(xml) for _ in range(4)]  # WeChat's first try and its three retries
    replies = [follower.platform.reply_of(a, follower.openid) for a in answers]
    assert replies[0] and NUMBER.search(replies[0]) and "转接人工客服" in replies[0]
    assert replies == [replies[0]] * 4  # a retry gets the same reply: WeChat shows one
    assert follower.pushed(but_reminders=True) == []
    assert follower.user_turns() == ["转人工"]
    assert len(conversation_tickets(session_factory(stack.database_url), follower.openid)) == 1


def test_retries_arriving_together_give_one_answer_and_one_ticket(follower: Follower, stack: Stack):
    follower.encrypted = True
    xml = follower.platform.text(follower.openid, "我要转人工客服")
    answers: list[Answer] = []
    start = threading.Barrier(4)

    def post() -> None:
        start.wait()
        answers.append(follower.send(xml))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    replies = [r for r in (follower.platform.reply_of(a, follower.openid) for a in answers) if r]
    if not replies:  # the retries came while the bot worked: the answer was pushed
        follower.wait_for_push(lambda t: bool(NUMBER.search(t)))
    pushed = follower.pushed(but_reminders=True)
    # one answer: either the passive reply (the same to every attempt) or pushed, never both
    assert (len(set(replies)), len(pushed)) == (1, 0) or (replies, len(set(pushed))) == ([], len(pushed))
    delivered = "\n".join(sorted(set(replies)) + pushed)
    assert len(NUMBER.findall(delivered)) == 1
    assert follower.user_turns() == ["我要转人工客服"]
    assert len(conversation_tickets(session_factory(stack.database_url), follower.openid)) == 1


# --- events -----------------------------------------------------------------------------------------


def test_following_gets_the_welcome_and_the_menu(follower: Follower):
    reply = follower.reply_to(follower.platform.event(follower.openid, "subscribe", ""))
    assert reply == messages.WELCOME
    assert follower.user_turns() == []  # the channel answered; the bot was not asked


def test_unfollowing_is_recorded_and_drops_the_binding(follower: Follower, stack: Stack):
    sessions = session_factory(stack.database_url)
    bindings.bind(sessions, follower.openid, "3201000002", clock.now())
    assert follower.send(follower.platform.event(follower.openid, "unsubscribe", "")).success
    assert bindings.bound_account(sessions, follower.openid) is None
    assert "unfollowed; binding to 3201****02 dropped" in stack.rasa.log()


@pytest.mark.parametrize(
    ("key", "intent", "expected"),
    [("QUERY_BILL", "/query_bill", "户号"), ("QUERY_OUTAGE", "/query_outage", "小区"),
     ("HUMAN", "/request_human", "转接人工客服")],
)  # fmt: skip
def test_menu_clicks_are_intents(follower: Follower, key: str, intent: str, expected: str):
    reply = follower.reply_to(follower.platform.event(follower.openid, "CLICK", key))
    assert reply and expected in reply
    assert follower.user_turns() == [intent]


def test_menu_links_and_other_events_get_no_answer(follower: Follower):
    assert follower.send(follower.platform.event(follower.openid, "VIEW", "https://www.95598.cn")).success
    assert follower.user_turns() == []


# --- other kinds of message -------------------------------------------------------------------------


def test_a_recognised_voice_message_is_handled_as_text(follower: Follower):
    reply = follower.reply_to(follower.platform.voice(follower.openid, "光明路停电了吗？"))
    assert reply and "光明路" in reply and ("抢修" in reply or "来电" in reply or "停电" in reply)
    assert follower.user_turns() == ["光明路停电了吗？"]


@pytest.mark.parametrize("kind", ["image", "video", "shortvideo", "link", "voice"])
def test_what_the_bot_cannot_read_gets_a_polite_answer(follower: Follower, kind: str):
    platform = follower.platform
    xml = {"image": lambda: platform.image(follower.openid), "link": lambda: platform.link(follower.openid),
           "voice": lambda: platform.voice(follower.openid, None)}.get(
        kind, lambda: platform.video(follower.openid, kind))()  # fmt: skip
    reply = follower.reply_to(xml)
    assert reply and "查电费" in reply and "人工" in reply
    assert follower.user_turns() == []


def test_a_shared_location_in_a_supply_area_gets_its_outages(follower: Follower):
    reply = follower.reply_to(follower.platform.location(follower.openid, "光明路28号(光明小区东门)"))
    assert reply and "光明路" in reply and ("抢修" in reply or "来电" in reply)
    assert follower.user_turns() == ['/query_outage{"address": "光明路"}']


def test_a_shared_location_elsewhere_gets_a_polite_answer(follower: Follower):
    reply = follower.reply_to(follower.platform.location(follower.openid, "北京市东城区长安街1号"))
    assert reply == messages.NOT_UNDERSTOOD["location"] + messages.CAN_DO
    assert follower.user_turns() == []


# --- binding ----------------------------------------------------------------------------------------


def test_binding_after_the_identity_check_and_unbinding(follower: Follower, stack: Stack):
    sessions = session_factory(stack.database_url)
    asked = follower.say("帮我查下3201000001的电费")
    assert asked and ("户主姓名" in asked or "后四位" in asked)
    answer = follower.say("张伟")
    assert answer and "元" in answer and "已将户号3201****01绑定到您的微信" in answer
    assert bindings.bound_account(sessions, follower.openid) == "3201000001"

    follower.forget_the_conversation()  # a later conversation: no slots left
    answer = follower.say("查电费")
    assert answer and "元" in answer and "户主姓名" not in answer and "10位" not in answer  # no questions
    assert follower.user_turns()[-1] == "查电费"

    assert follower.say("解绑") == messages.unbound("3201000001")
    assert bindings.bound_account(sessions, follower.openid) is None
    follower.forget_the_conversation()
    asked = follower.say("查电费")
    assert asked and "户号" in asked and "元" not in asked


# --- the agent's reply ---------------------------------------------------------------------------------


@pytest.fixture
def console(stack: Stack, monkeypatch: pytest.MonkeyPatch):
    # the console's side (bot.handoff.desk) reaches this stack's Rasa server
    monkeypatch.setenv("RASA_URL", stack.rasa_url)
    monkeypatch.setenv("RASA_TOKEN", RASA_TOKEN)
    return session_factory(stack.database_url)


def test_an_agents_reply_reaches_the_follower_through_the_api(follower: Follower, console):
    number = NUMBER.search(follower.say("转人工"))[0]
    service.claim(console, number, "wang", clock.now())
    message = desk.reply(console, number, "wang", "您好，我是客服小王，马上为您处理。", clock.now())
    assert message.error is None
    pushed = follower.wait_for_push(lambda t: "客服小王" in t)
    assert pushed == "【人工客服】您好，我是客服小王，马上为您处理。"


def test_the_reminder_to_an_unclaimed_follower_arrives_through_the_api(follower: Follower):
    """Rasa sends a reminder through the output channel of the turn that set it."""
    number = NUMBER.search(follower.say("转人工"))[0]
    reminder = follower.wait_for_push(lambda t: "客服马上就来" in t)
    assert number in reminder and follower.pushed() == [reminder]


def test_an_agents_reply_after_48_hours_is_noted_on_the_ticket(follower: Follower, stack: Stack, console):
    number = NUMBER.search(follower.say("转人工"))[0]
    service.claim(console, number, "li", clock.now())
    stack.wechat_api.outside_window.add(follower.openid)
    desk.reply(console, number, "li", "您好，抢修人员已出发。", clock.now())
    notes = [e.detail["text"] for e in ticket_events(console, number) if e.kind == "note"]
    assert len(notes) == 1 and "45015" in notes[0] and "抢修人员已出发" in notes[0]
    assert follower.pushed() == []


# --- attacks ------------------------------------------------------------------------------------------


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
    "<xml><ToUserName>gh</ToUserName><FromUserName>{openid}</FromUserName><CreateTime>{now}</CreateTime>"
    "<MsgType>text</MsgType><Content>&d;</Content><MsgId>1</MsgId></xml>"
)
EXTERNAL_ENTITY = (
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    "<xml><ToUserName>gh</ToUserName><FromUserName>{openid}</FromUserName><CreateTime>{now}</CreateTime>"
    "<MsgType>text</MsgType><Content>&x;</Content><MsgId>2</MsgId></xml>"
)


def attack(follower: Follower, name: str) -> Answer:
    platform, openid = follower.platform, follower.openid
    xml = platform.text(openid, "查电费")
    now = int(time.time())
    if name == "forged signature":
        return platform.post(xml, query=platform.query(openid) | {"signature": "0" * 40})
    if name == "old timestamp":
        return platform.post(xml, query=platform.query(openid, timestamp=now - 301))
    if name == "future timestamp":
        return platform.post(xml, query=platform.query(openid, timestamp=now + 3600))
    if name == "forged msg_signature":
        encrypt = platform.seal(xml)
        query = platform.query(openid, encrypt=encrypt) | {"msg_signature": "1" * 40}
        return platform.raw_post(query, f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>".encode())
    if name == "malformed body":
        return platform.raw_post(platform.query(openid), b"<xml><MsgType>text</MsgType><Content>")
    if name == "oversized body":
        return platform.raw_post(platform.query(openid), platform.text(openid, "电" * 30_000).encode())
    if name == "billion laughs":
        return platform.raw_post(platform.query(openid), BILLION_LAUGHS.format(openid=openid, now=now).encode())
    if name == "external entity":
        return platform.raw_post(platform.query(openid), EXTERNAL_ENTITY.format(openid=openid, now=now).encode())
    raise AssertionError(name)


@pytest.mark.parametrize(
    ("name", "status", "reason"),
    [
        ("forged signature", 403, "signature does not match"),
        ("old timestamp", 403, "timestamp old by 301 s"),
        ("future timestamp", 403, "timestamp in the future"),
        ("forged msg_signature", 403, "msg_signature does not match"),
        ("malformed body", 400, "malformed XML"),
        ("oversized body", 400, "over the 65536 limit"),
        ("billion laughs", 400, "XML refused by defusedxml"),
        ("external entity", 400, "XML refused by defusedxml"),
    ],
)
def test_attacks_are_refused_and_logged_without_reaching_the_bot(
    follower: Follower, stack: Stack, name: str, status: int, reason: str
):
    refusals = re.compile(rf"WeChat request refused \(HTTP {status}\): .*{re.escape(reason)}")
    logged_before = len(refusals.findall(stack.rasa.log()))
    answer = attack(follower, name)
    assert answer.status == status
    assert follower.user_turns() == []
    assert wait_for_log(stack.rasa, refusals, logged_before)


def wait_for_log(process: Process, lines: re.Pattern, seen_before: int, timeout: float = 10) -> bool:
    """The log has one more matching line than before (the server writes it as it answers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(lines.findall(process.log())) > seen_before:
            return True
        time.sleep(0.05)
    return False
