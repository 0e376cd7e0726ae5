"""The inbox's rules with a stand-in for the Rasa server: an answer in time is the passive
reply, a late one is pushed once, a retry never reaches the bot, and the channel's own
answers (unbind, unfollow, location, welcome) need no bot. The dedup store is the real
database one (SQLite); pushes go to a fake WeChat API on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
from wechatpy import parse_message

from bot import clock
from bot.db import session_factory
from bot.dedup import ANSWERED, DatabaseDedup, DedupUnavailable, MemoryDedup
from bot.known_customer import vouched_account
from bot.utility.sql import SqlUtilityData
from bot.wechat import bindings, messages
from bot.wechat.api import WeChatApi
from bot.wechat.config import WeChatConfig
from bot.wechat.delivery import Delivery
from bot.wechat.inbox import PUSHED, Inbox
from tests.e2e.servers import running
from tests.fake_wechat_api import FakeWeChatApi
from tests.wechat_platform import WeChatPlatform, new_openid

APP_ID, SECRET, TOKEN = "wx2c2769f8efd9abc2", "0f9e8d7c6b5a49382716", "t0ken95598"
REPLY_SECONDS = 0.5


@dataclass
class FakeBot:
    """Answers "您说：<text>"; `gate`, when set, holds every answer until it is opened."""

    calls: list[tuple[str, str, dict]] = field(default_factory=list)
    gate: asyncio.Event | None = None
    replies: list[dict] | None = None
    during_turn: object = None  # called with the sender id while the bot works (e.g. a binding)
    fail: bool = False
    seconds: float = 0.0  # how long a turn takes
    busy: list[str] = field(default_factory=list)  # the senders whose turn is running now
    most_at_once: int = 0
    together: bool = False  # two turns of one sender ran at once

    async def __call__(self, text: str, sender: str, metadata: dict) -> list[dict]:
        self.calls.append((text, sender, metadata))
        self.together |= sender in self.busy
        self.busy.append(sender)
        self.most_at_once = max(self.most_at_once, len(self.busy))
        try:
            await asyncio.sleep(self.seconds)
            if self.gate is not None:
                await self.gate.wait()
        finally:
            self.busy.remove(sender)
        if self.fail:
            raise RuntimeError("the tracker store is down")
        if self.during_turn:
            await asyncio.to_thread(self.during_turn, sender)
        return self.replies if self.replies is not None else [{"recipient_id": sender, "text": f"您说：{text}"}]


@pytest.fixture(scope="module")
def fake_api() -> Iterator[FakeWeChatApi]:
    api = FakeWeChatApi(APP_ID, SECRET)
    with running(api.server) as url:
        api.url = url
        yield api


@pytest.fixture(autouse=True)
def secret(monkeypatch):
    monkeypatch.setenv("CUSTOMER_TOKEN_SECRET", "inbox-test-secret")


@dataclass
class World:
    inbox: Inbox
    bot: FakeBot
    api: FakeWeChatApi
    store: object
    sessions: object
    platform: WeChatPlatform

    def receive(self, xml: str) -> list[str]:
        return asyncio.run(self._receive(xml))

    async def _receive(self, xml: str) -> list[str]:
        texts = await self.inbox.receive(parse_message(xml))
        await self.inbox.drain()  # what is pushed later goes out before this loop ends
        return texts


@pytest.fixture
def world(sqlite_url, fake_api) -> Iterator[World]:
    config = WeChatConfig(TOKEN, "", APP_ID, SECRET, fake_api.url, reply_seconds=REPLY_SECONDS, bot_concurrency=2)
    sessions = session_factory(sqlite_url)
    store = DatabaseDedup(sessions, ttl_seconds=600, namespace="wechat")
    bot = FakeBot()
    with ThreadPoolExecutor(max_workers=4) as executor:
        inbox = Inbox(
            config, store, Delivery(WeChatApi(fake_api.url, APP_ID, SECRET), lambda: sessions), bot, executor,
            lambda: sessions, lambda: SqlUtilityData(sqlite_url),
        )  # fmt: skip
        yield World(inbox, bot, fake_api, store, sessions, WeChatPlatform("http://unused", TOKEN))


# --- in time, late, retried ------------------------------------------------------------------


def test_an_answer_in_time_is_the_passive_reply(world):
    openid = new_openid()
    xml = world.platform.text(openid, "电费怎么交", msg_id="6100000000000000001")
    assert world.receive(xml) == ["您说：电费怎么交"]
    (text, sender, metadata), = world.bot.calls  # fmt: skip
    assert (text, sender) == ("电费怎么交", openid)
    assert metadata == {"wechat": {"message": "msg:6100000000000000001"}}  # no customer: not bound
    assert world.store.get("msg:6100000000000000001").state == ANSWERED
    assert world.api.texts(openid) == []


def test_three_retries_of_an_answered_message_get_the_same_reply_and_never_reach_the_bot(world):
    openid = new_openid()
    xml = world.platform.text(openid, "转人工")
    answers = [world.receive(xml) for _ in range(4)]
    assert answers == [["您说：转人工"]] * 4
    assert len(world.bot.calls) == 1 and world.api.texts(openid) == []


def test_a_late_answer_is_pushed_once(world):
    openid = new_openid()
    xml = world.platform.text(openid, "查电费")

    async def scenario() -> tuple[list[str], list[list[str]]]:
        world.bot.gate = asyncio.Event()
        first = await world.inbox.receive(parse_message(xml))  # gives up after REPLY_SECONDS
        retries = [await world.inbox.receive(parse_message(xml)) for _ in range(3)]
        world.bot.gate.set()
        await world.inbox.drain()
        return first, retries

    first, retries = asyncio.run(scenario())
    assert first == [] and retries == [[], [], []]
    assert world.api.texts(openid) == ["您说：查电费"]
    assert len(world.bot.calls) == 1
    assert world.store.get(f"msg:{parse_message(xml).id}").state == PUSHED


def test_a_retry_while_the_bot_works_sends_the_answer_through_the_api(world):
    """WeChat retries only after it stopped listening to the first request, so the first
    request's passive reply would be lost: the answer is pushed, once."""
    openid = new_openid()
    xml = world.platform.text(openid, "光明路停电了吗")

    async def scenario() -> tuple[list[str], list[str]]:
        world.bot.gate = asyncio.Event()
        first = asyncio.create_task(world.inbox.receive(parse_message(xml)))
        while not world.bot.calls:
            await asyncio.sleep(0.01)
        retry = await world.inbox.receive(parse_message(xml))
        world.bot.gate.set()  # the answer is now ready in time for the first request
        answers = await first, retry
        await world.inbox.drain()
        return answers

    first, retry = asyncio.run(scenario())
    assert first == [] and retry == []
    assert world.api.texts(openid) == ["您说：光明路停电了吗"]
    assert len(world.bot.calls) == 1


def test_wechat_hanging_up_does_not_lose_the_message(world):
    """Sanic cancels a request whose client went away: the message, already claimed or
    not, is still answered once."""
    openid = new_openid()
    xml = world.platform.text(openid, "电费怎么交")

    async def scenario() -> list[str]:
        request = asyncio.create_task(world.inbox.receive(parse_message(xml)))
        await asyncio.sleep(0)  # the request has started
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        await world.inbox.drain()
        return await world.inbox.receive(parse_message(xml))  # WeChat's retry

    retry = asyncio.run(scenario())
    # pushed, or (when the answer won the race with the hang-up) the retry's passive reply: once
    assert sorted(retry + world.api.texts(openid)) == ["您说：电费怎么交"]
    assert len(world.bot.calls) == 1


def test_a_followers_messages_reach_the_bot_one_at_a_time_in_order(world):
    openid = new_openid()
    world.bot.seconds = 0.05
    xmls = [world.platform.text(openid, f"第{n}条") for n in range(1, 5)]

    async def scenario() -> list[list[str]]:
        return await asyncio.gather(*(world.inbox.receive(parse_message(x)) for x in xmls))

    assert asyncio.run(scenario()) == [[f"您说：第{n}条"] for n in range(1, 5)]
    assert [text for text, _, _ in world.bot.calls] == ["第1条", "第2条", "第3条", "第4条"]
    assert not world.bot.together


def test_at_most_bot_concurrency_turns_run_at_once(world):
    world.bot.seconds = 0.05
    xmls = [world.platform.text(new_openid(), "你好") for _ in range(8)]

    async def scenario() -> list[list[str]]:
        return await asyncio.gather(*(world.inbox.receive(parse_message(x)) for x in xmls))

    assert asyncio.run(scenario()) == [["您说：你好"]] * 8
    assert world.bot.most_at_once == 2


def test_an_answer_too_long_for_one_reply_is_pushed_in_order(world):
    openid = new_openid()
    world.bot.replies = [{"text": "电" * 500}, {"text": "费" * 500}]
    assert world.receive(world.platform.text(openid, "查电费")) == []
    assert world.api.texts(openid) == ["电" * 500, "费" * 500]


def test_a_failed_turn_gets_an_apology_with_the_hotline(world):
    world.bot.fail = True
    assert world.receive(world.platform.text(new_openid(), "查电费")) == [messages.BOT_TROUBLE]
    assert "95598" in messages.BOT_TROUBLE


def test_without_the_dedup_store_this_process_still_takes_a_message_once(world):
    class Down:
        def claim(self, key):
            raise DedupUnavailable("ConnectionError")

        get = move = claim

    world.inbox._store = Down()
    xml = world.platform.text(new_openid(), "你好")
    assert world.receive(xml) == ["您说：你好"]
    assert world.receive(xml) == ["您说：你好"]
    assert len(world.bot.calls) == 1


# --- bound followers --------------------------------------------------------------------------


def test_a_bound_follower_is_vouched_for(world):
    openid = new_openid()
    bindings.bind(world.sessions, openid, "3201000001", clock.now())
    world.receive(world.platform.event(openid, "CLICK", "QUERY_BILL"))
    (text, _, metadata), = world.bot.calls  # fmt: skip
    assert text == "/query_bill"
    assert vouched_account(metadata) == "3201000001"


def test_a_binding_made_in_the_turn_is_announced_masked(world):
    openid = new_openid()
    world.bot.during_turn = lambda sender: bindings.bind(world.sessions, sender, "3201000002", clock.now())
    answer = world.receive(world.platform.text(openid, "李娜"))
    assert answer == ["您说：李娜", messages.bound("3201000002")]
    assert "3201****02" in answer[1] and "3201000002" not in answer[1] and "解绑" in answer[1]


def test_unbind(world):
    openid = new_openid()
    bindings.bind(world.sessions, openid, "3201000001", clock.now())
    assert world.receive(world.platform.text(openid, "解绑")) == [messages.unbound("3201000001")]
    assert bindings.bound_account(world.sessions, openid) is None
    assert world.receive(world.platform.text(openid, "解绑")) == [messages.NOTHING_TO_UNBIND]
    assert world.bot.calls == []


def test_unfollowing_drops_the_binding_and_says_nothing(world):
    openid = new_openid()
    bindings.bind(world.sessions, openid, "3201000001", clock.now())
    assert world.receive(world.platform.event(openid, "unsubscribe", "")) == []
    assert bindings.bound_account(world.sessions, openid) is None and world.bot.calls == []


def test_following_gets_the_welcome_and_the_menu(world):
    assert world.receive(world.platform.event(new_openid(), "subscribe", "")) == [messages.WELCOME]
    assert world.bot.calls == []


def test_a_location_in_a_known_area_asks_for_its_outages(world):
    assert world.receive(world.platform.location(new_openid(), "上海市光明路88号")) == [
        '您说：/query_outage{"address": "光明路"}'
    ]
    assert world.receive(world.platform.location(new_openid(), "北京市长安街1号")) == [
        messages.NOT_UNDERSTOOD["location"] + messages.CAN_DO
    ]
    assert len(world.bot.calls) == 1


def test_a_memory_store_behaves_like_the_others(world):
    world.inbox._store = MemoryDedup(60)
    xml = world.platform.text(new_openid(), "你好")
    assert world.receive(xml) == world.receive(xml) == ["您说：你好"]
    assert len(world.bot.calls) == 1
