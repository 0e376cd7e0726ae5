"""One real stack for the whole session: company API (reference server on the demo
database) behind a fault proxy, the action server asking it over HTTP, and the Rasa
server with the trained model, talking through the REST channel."""

from __future__ import annotations

import json
import re
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import delete

from bot import clock
from bot.db import session_factory
from bot.demo_data import ensure_demo_data
from bot.models import IdentityFailure
from bot.schema import upgrade
from bot.utility.reference_api import make_server
from tests.e2e.servers import (
    ACTION_SERVER_ENV,
    PROJECT,
    VENV_BIN,
    CallbackChannel,
    FaultProxy,
    Process,
    RestClient,
    free_port,
    running,
    start,
    wait_until_up,
)
from tests.fake_wechat_api import FakeWeChatApi

ARTIFACTS = PROJECT / "tests" / "artifacts"


# the Rasa HTTP API's token in the tests (the console uses it to reach customers)
RASA_TOKEN = "e2e-token"
# the one reminder to a customer nobody has picked up, soon enough to be seen in a test
REMINDER_SECONDS = 6
# the key channels sign a known customer's 户号 with (bot/known_customer.py)
CUSTOMER_SECRET = "e2e-customer-secret"
# the WeChat official account's settings (docs/wechat.md); its API is a fake on loopback
WECHAT_TOKEN, WECHAT_AES_KEY = "e2eWeChatToken95598", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
WECHAT_APP_ID, WECHAT_APP_SECRET = "wx5823bf96d3bd56c7", "e2e0a1b2c3d4e5f6a7b8c9d0e1f2a3b4"


@dataclass
class Stack:
    rest: RestClient
    proxy: FaultProxy
    actions: Process
    rasa: Process
    database_url: str
    rasa_url: str
    callbacks: CallbackChannel
    wechat_api: FakeWeChatApi  # WeChat's API on loopback: what the bot pushed to followers
    actions_url: str  # the action server's webhook

    def conversation(self) -> Conversation:
        return Conversation(self.rest, f"e2e-{uuid.uuid4().hex[:10]}")

    def tracker_events(self, sender: str) -> list[dict]:
        """The conversation's events as the Rasa server keeps them."""
        url = f"{self.rasa_url}/conversations/{sender}/tracker?token={RASA_TOKEN}"
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.load(response)["events"]

    def parse(self, text: str) -> dict:
        """What the server's NLU makes of `text` (POST /model/parse), outside any conversation."""
        request = urllib.request.Request(
            f"{self.rasa_url}/model/parse?token={RASA_TOKEN}",
            data=json.dumps({"text": text}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)


@dataclass
class Conversation:
    rest: RestClient
    sender: str
    turns: list[tuple[str, list[str]]] = field(default_factory=list)

    def say(self, text: str) -> str:
        """The bot's replies to one message, joined into one text."""
        replies = self.rest.send(self.sender, text)
        self.turns.append((text, replies))
        return "\n".join(replies)


HANDED_OFF = re.compile(r"转接人工客服")
HANDED_BACK = re.compile(r"转回给我|交回给我|人工服务已经结束")
APOLOGY = re.compile(r"抱歉|对不起|道歉|不好意思")
ACTION = re.compile(r"查|登记|工单|转|安排|为您|帮您|拨打|核对|记|联系|处理|标记|换个说法|再发")
BLAME = re.compile(r"您自己|你自己|怪您|怪你|您的问题|你的问题|谁让您|谁让你|您应该早|自己去|不归我管|爱咋咋")


def assert_follows_the_doctrine(conversation: Conversation) -> None:
    """The complaint doctrine's wrong ways, checked on every recorded conversation: no
    silence (but while an agent has the conversation, the bot is silent by design), no
    apology without an action, no blame or rudeness, at most one question a turn, and no
    canned line said twice (lines with figures are answers, not canned)."""
    said: set[str] = set()
    handed_off = False
    for message, replies in conversation.turns:
        where = f"customer: {message!r} -> bot: {replies!r}"
        turn = "\n".join(replies)
        if handed_off and not replies:
            continue
        assert replies and all(r.strip() for r in replies), f"silence: {where}"
        handed_off = bool(HANDED_OFF.search(turn)) or (handed_off and not HANDED_BACK.search(turn))
        if APOLOGY.search(turn):
            assert ACTION.search(turn), f"apology without an action: {where}"
        assert not BLAME.search(turn), f"blame or rudeness: {where}"
        assert turn.count("？") + turn.count("?") <= 1, f"more than one question: {where}"
        for reply in replies:
            canned = not any(c.isdigit() for c in reply)
            assert not (canned and reply in said), f"the same line twice: {where}"
            said.add(reply)


def rasa_endpoints(actions_url: str) -> str:
    """endpoints.yml as the project's, with this action server."""
    text = (PROJECT / "endpoints.yml").read_text(encoding="utf-8")
    assert "http://127.0.0.1:5055/webhook" in text
    return text.replace("http://127.0.0.1:5055/webhook", actions_url)


def _model() -> str:
    model = PROJECT / "models" / "current.tar.gz"
    if not model.exists():
        pytest.fail("no trained model in models/: run scripts/test.sh (it trains first) or scripts/train.sh")
    return str(model)


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Iterator[Stack]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    database_url = f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'bot.db'}"
    upgrade(database_url)
    ensure_demo_data(session_factory(database_url), clock.now())

    callbacks = CallbackChannel()
    wechat_api = FakeWeChatApi(WECHAT_APP_ID, WECHAT_APP_SECRET)
    with (
        running(make_server(database_url, "127.0.0.1", 0)) as company_url,
        running(callbacks.server) as callback_url,
        running(wechat_api.server) as wechat_url,
    ):
        proxy = FaultProxy(company_url)
        yield from _serve(tmp_path_factory, database_url, proxy, callbacks, callback_url, wechat_api, wechat_url)


def _serve(
    tmp_path_factory,
    database_url: str,
    proxy: FaultProxy,
    callbacks: CallbackChannel,
    callback_url: str,
    wechat_api: FakeWeChatApi,
    wechat_url: str,
) -> Iterator[Stack]:
    actions_port, rasa_port = free_port(), free_port()
    config = tmp_path_factory.mktemp("config")
    endpoints, credentials = config / "endpoints.yml", config / "credentials.yml"
    endpoints.write_text(rasa_endpoints(f"http://127.0.0.1:{actions_port}/webhook"))
    # the project's channels, and the callback channel: the customer's end in these tests
    credentials.write_text(
        (PROJECT / "credentials.yml").read_text(encoding="utf-8") + f'\ncallback:\n  url: "{callback_url}/bot"\n'
    )
    env = {
        "DATABASE_URL": database_url,
        "UTILITY_BACKEND": "http",
        "UTILITY_API_URL": proxy.url,
        "UTILITY_TIMEOUT_SECONDS": "1",
        "UTILITY_RETRIES": "1",
        "RASA_TELEMETRY_ENABLED": "false",
        "HANDOFF_REMINDER_SECONDS": str(REMINDER_SECONDS),
        "CUSTOMER_TOKEN_SECRET": CUSTOMER_SECRET,
        "WECHAT_TOKEN": WECHAT_TOKEN,
        "WECHAT_ENCODING_AES_KEY": WECHAT_AES_KEY,
        "WECHAT_APP_ID": WECHAT_APP_ID,
        "WECHAT_APP_SECRET": WECHAT_APP_SECRET,
        "WECHAT_API_URL": wechat_url,
        **ACTION_SERVER_ENV,
    }
    actions = start(
        "action-server", [str(VENV_BIN / "rasa"), "run", "actions", "--port", str(actions_port)], env, ARTIFACTS
    )
    rasa = start(
        "rasa-server",
        [
            str(VENV_BIN / "rasa"), "run", "--port", str(rasa_port),
            "--interface", "127.0.0.1", "--model", _model(),
            "--endpoints", str(endpoints), "--credentials", str(credentials),
            "--enable-api", "--auth-token", RASA_TOKEN,
        ],
        env,
        ARTIFACTS,
    )
    try:
        wait_until_up(actions, f"http://127.0.0.1:{actions_port}/health")
        wait_until_up(rasa, f"http://127.0.0.1:{rasa_port}/", ready="Hello from Rasa")
        rasa_url = f"http://127.0.0.1:{rasa_port}"
        yield Stack(
            RestClient(rasa_url),
            proxy,
            actions,
            rasa,
            database_url,
            rasa_url,
            callbacks,
            wechat_api,
            f"http://127.0.0.1:{actions_port}/webhook",
        )
    finally:
        rasa.stop()
        actions.stop()
        proxy.close()
    # the action server's connections, kept between calls (bot/rasa_speedups/action_calls.py), closed at exit
    assert "Unclosed" not in rasa.log()


@pytest.fixture
def chat(stack: Stack) -> Iterator[Conversation]:
    """A new customer conversation; the company API is healthy and no account is locked.
    Afterwards the recorded conversation must follow the complaint doctrine."""
    stack.proxy.mode = "pass"
    with session_factory(stack.database_url).begin() as session:
        session.execute(delete(IdentityFailure))
    conversation = stack.conversation()
    yield conversation
    assert_follows_the_doctrine(conversation)
