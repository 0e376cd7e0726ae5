"""The customer-service message API against a fake WeChat API on loopback: the access
token fetched once and cached, refreshed and the message sent again once when WeChat
refuses it (40001, 42001), and a follower outside the 48-hour window (45015) noted on
their open ticket."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from bot import clock
from bot.db import session_factory
from bot.tickets.service import file_ticket, ticket_events
from bot.wechat.api import OutsideWindow, WeChatApi, WeChatApiError
from bot.wechat.delivery import Delivery
from tests.e2e.servers import free_port, running
from tests.fake_wechat_api import FakeWeChatApi
from tests.ticket_drafts import draft
from tests.wechat_platform import new_openid

APP_ID, SECRET = "wx2c2769f8efd9abc2", "0f9e8d7c6b5a49382716"


@pytest.fixture
def fake() -> Iterator[FakeWeChatApi]:
    api = FakeWeChatApi(APP_ID, SECRET)
    with running(api.server) as url:
        api.url = url
        yield api


@pytest.fixture
def client(fake) -> WeChatApi:
    return WeChatApi(fake.url, APP_ID, SECRET, timeout=5)


def test_the_token_is_fetched_once_and_reused(fake, client):
    openid = new_openid()
    client.send_text(openid, "您好")
    client.send_text(openid, "您的电费已结清")
    assert fake.texts(openid) == ["您好", "您的电费已结清"]
    assert fake.token_requests == 1
    assert fake.sent[0]["msgtype"] == "text" and fake.sent[0]["touser"] == openid


@pytest.mark.parametrize(("fault", "code"), [("revoke_tokens", 40001), ("expire_tokens", 42001)])
def test_a_refused_token_is_refreshed_and_the_message_sent_again_once(fake, client, fault, code):
    openid = new_openid()
    client.send_text(openid, "第一条")
    getattr(fake, fault)()
    client.send_text(openid, "第二条")
    assert fake.errors == [code]
    assert fake.token_requests == 2
    assert fake.texts(openid) == ["第一条", "第二条"]


def test_a_token_refused_twice_is_an_error_not_a_loop(fake, client):
    openid = new_openid()
    fake.fail_next(40001, 40001, 40001)
    with pytest.raises(WeChatApiError) as error:
        client.send_text(openid, "您好")
    assert error.value.errcode == 40001
    assert fake.errors == [40001, 40001] and fake.token_requests == 2 and fake.texts(openid) == []


def test_outside_the_48_hour_window(fake, client):
    openid = new_openid()
    fake.outside_window.add(openid)
    with pytest.raises(OutsideWindow) as error:
        client.send_text(openid, "您好")
    assert error.value.errcode == 45015 and fake.token_requests == 1


def test_a_wrong_secret_or_no_server_is_an_error(fake):
    with pytest.raises(WeChatApiError, match="no access token"):
        WeChatApi(fake.url, APP_ID, "wrong", timeout=5).send_text(new_openid(), "您好")
    with pytest.raises(WeChatApiError, match="unreachable"):
        WeChatApi(f"http://127.0.0.1:{free_port()}", APP_ID, SECRET, timeout=2).send_text(new_openid(), "您好")


# --- delivery -------------------------------------------------------------------------------


def test_45015_is_logged_and_noted_on_the_customers_open_ticket(fake, client, sqlite_url, caplog):
    sessions = session_factory(sqlite_url)
    openid = new_openid()
    older = file_ticket(sessions, draft(conversation_id=openid, channel="wechat"), clock.now()).ticket.number
    newest = file_ticket(sessions, draft(conversation_id=openid, channel="wechat", category="staff_conduct",
                                         description="营业员态度差"), clock.now()).ticket.number  # fmt: skip
    fake.outside_window.add(openid)
    delivery = Delivery(client, lambda: sessions)
    with caplog.at_level(logging.WARNING, logger="bot.wechat.delivery"):
        assert delivery.push(openid, ["【人工客服】您好，您的问题已处理。", "还有其他问题吗"]) == 0
    assert "45015" in caplog.text and openid not in caplog.text  # the openid is masked
    notes = [e for e in ticket_events(sessions, newest) if e.kind == "note"]
    assert len(notes) == 1 and notes[0].actor == "system"
    assert "45015" in notes[0].detail["text"] and "您的问题已处理" in notes[0].detail["text"]
    assert not [e for e in ticket_events(sessions, older) if e.kind == "note"]


def test_45015_without_an_open_ticket_is_logged(fake, client, sqlite_url, caplog):
    openid = new_openid()
    fake.outside_window.add(openid)
    with caplog.at_level(logging.INFO, logger="bot.wechat.delivery"):
        assert Delivery(client, lambda: session_factory(sqlite_url)).push(openid, ["您好"]) == 0
    assert "45015" in caplog.text and "no open ticket" in caplog.text


def test_delivery_sends_in_order_and_stops_at_a_failure(fake, client, sqlite_url):
    openid = new_openid()
    delivery = Delivery(client, lambda: session_factory(sqlite_url))
    assert delivery.push(openid, ["一", "二", "三"]) == 3
    fake.fail_next(45009)  # the daily quota
    assert delivery.push(openid, ["四", "五"]) == 0
    assert fake.texts(openid) == ["一", "二", "三"]


def test_without_app_credentials_nothing_is_pushed(sqlite_url, caplog):
    delivery = Delivery(None, lambda: session_factory(sqlite_url))
    with caplog.at_level(logging.WARNING, logger="bot.wechat.delivery"):
        assert not delivery.possible and delivery.push(new_openid(), ["您好"]) == 0
    assert "WECHAT_APP_ID" in caplog.text
