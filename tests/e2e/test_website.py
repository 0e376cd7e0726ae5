"""The website's chat widget in a real browser (Debian's headless Chromium, driven by
Playwright; no browser is downloaded): the page served by `python -m bot website serve`,
the vendored rasa-webchat talking to the real Rasa server's socket.io channel, the action
server, the company API, and an agent answering in the real console. Nothing may be
loaded from a host other than 127.0.0.1. Screenshots: tests/artifacts/screenshots/website-*.png."""

# ruff: noqa: F811 (the console browser test's fixtures are imported here, then named as parameters)
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page
from sqlalchemy import delete

from bot.db import session_factory
from bot.known_customer import vouched_account
from bot.models import IdentityFailure
from tests.e2e.conftest import CUSTOMER_SECRET, Stack
from tests.e2e.servers import VENV_BIN, Process, free_port, start, wait_until_up
from tests.e2e.test_console_browser import (  # noqa: F401 (fixtures: browser, console, contexts, person)
    ARTIFACTS,
    LAPTOP,
    SHOTS,
    browser,
    console,
    contexts,
    person,
    signed_in,
)

NUMBER = re.compile(r"GD\d{12}")
ANSWER_SECONDS = 45_000  # milliseconds a bot answer may take (a cold model, a busy machine)
IDENTITY_QUESTION = re.compile(r"户主姓名|后四位")


@pytest.fixture(scope="module")
def website(stack: Stack) -> Iterator[str]:
    """The website as scripts/run.sh starts it, pointed at the stack's Rasa server."""
    port = free_port()
    env = {
        "DATABASE_URL": stack.database_url,
        "UTILITY_BACKEND": "http",
        "UTILITY_API_URL": stack.proxy.url,
        "RASA_PUBLIC_URL": stack.rasa_url,
        "CUSTOMER_TOKEN_SECRET": CUSTOMER_SECRET,
        "WEBSITE_COOKIE_SECURE": "1",
    }
    process: Process = start(
        "website", [str(VENV_BIN / "python"), "-m", "bot", "website", "serve", "--port", str(port)], env, ARTIFACTS
    )
    try:
        wait_until_up(process, f"http://127.0.0.1:{port}/")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()


@pytest.fixture(autouse=True)
def healthy(stack: Stack) -> None:
    """The company API answers and no account is locked by earlier tests' wrong answers."""
    stack.proxy.mode = "pass"
    with session_factory(stack.database_url).begin() as session:
        session.execute(delete(IdentityFailure))


class Visitor:
    """A visitor's tab: what it loaded and what the page's CSP refused are recorded."""

    def __init__(self, browser: Browser, contexts: list[BrowserContext]) -> None:
        self.context = browser.new_context(viewport=LAPTOP, locale="zh-CN")
        contexts.append(self.context)
        self.loaded: list[str] = []
        self.refused: list[str] = []
        self.context.on("request", lambda request: self.loaded.append(request.url))
        self.page = self.context.new_page()
        self.page.on("websocket", lambda socket: self.loaded.append(socket.url))
        self.page.on("console", self._console)

    def _console(self, message) -> None:
        if "Content Security Policy" in message.text:
            self.refused.append(message.text)

    def open_chat(self) -> str:
        """Open the widget; the greeting."""
        self.page.click("#banner-chat")
        return self.bot_says(re.compile("您好"))

    def say(self, text: str) -> None:
        self.page.fill(".rw-new-message", text)
        self.page.press(".rw-new-message", "Enter")
        self.page.locator(".rw-client", has_text=text).last.wait_for()

    def bot_says(self, pattern: re.Pattern) -> str:
        """The first bot message that matches, waiting for it."""
        message = self.page.locator(".rw-response").filter(has_text=pattern).first
        message.wait_for(timeout=ANSWER_SECONDS)
        return message.inner_text()

    def bot_messages(self) -> list[str]:
        return self.page.locator(".rw-response").all_inner_texts()

    def session_id(self) -> str:
        return json.loads(self.page.evaluate("() => sessionStorage.getItem('chat_session')"))["session_id"]

    def assert_stayed_home(self) -> None:
        """Nothing came from another host (no CDN, no Google Fonts), and the CSP refused nothing."""
        foreign = [
            url
            for url in self.loaded
            if not url.startswith(("data:", "blob:")) and urlsplit(url).hostname != "127.0.0.1"
        ]
        assert not foreign, f"loaded from other hosts: {foreign}"
        assert not self.refused, f"refused by the page's CSP: {self.refused}"


def user_metadata(stack: Stack, sender: str) -> list[dict]:
    return [e.get("metadata") or {} for e in stack.tracker_events(sender) if e["event"] == "user"]


def website_shot(page: Page, name: str) -> None:
    """What the visitor sees (a full-page capture resizes the window, and the widget's
    message list then stops short of its last messages)."""
    page.screenshot(path=str(SHOTS / f"website-{name}.png"))


def test_a_visitor_gets_a_bill_then_an_agent_and_keeps_the_conversation_on_reload(
    stack: Stack, website: str, console: str, browser: Browser, contexts: list, person
) -> None:
    visitor = Visitor(browser, contexts)
    page = visitor.page
    page.goto(website)
    page.locator(".rw-launcher").wait_for()
    assert "95598" in page.locator("footer").inner_text()
    website_shot(page, "1-home")

    visitor.open_chat()
    website_shot(page, "2-greeting")

    visitor.say("帮我查下3201000001上个月电费")
    visitor.bot_says(IDENTITY_QUESTION)
    visitor.say("张伟")
    bill = visitor.bot_says(re.compile("元"))
    assert "3201****01" in bill
    website_shot(page, "3-bill")

    sender = visitor.session_id()
    metadata = user_metadata(stack, sender)
    assert metadata and all(m.get("page_url") == f"{website}/" for m in metadata)
    assert not any("customer" in m for m in metadata)  # nobody signed in: nothing vouched for

    visitor.say("转人工")
    queued = visitor.bot_says(re.compile("转接人工客服"))
    number = NUMBER.search(queued)[0]
    website_shot(page, "4-queued")

    agent = signed_in(browser, contexts, console, person("agent", "王芳"))
    agent.click(f'.queue-item[data-ticket="{number}"] button.claim', timeout=30_000)
    agent.wait_for_url(re.compile(rf"/tickets/{number}(\?|$)"))
    agent.fill("#reply-text", "您好，我是客服王芳，您的电费我来核对。")
    agent.click("#reply-send")
    visitor.bot_says(re.compile("【人工客服】您好，我是客服王芳"))
    website_shot(page, "5-agent-reply")

    said = visitor.bot_messages()
    page.reload()
    page.locator(".rw-response", has_text="【人工客服】").wait_for()
    assert visitor.bot_messages() == said  # the whole conversation, once, nothing sent again
    assert visitor.session_id() == sender
    visitor.say("好的，我在线等")  # the same conversation on the server: it reaches the agent
    agent.locator('#transcript .line.customer:has-text("我在线等")').wait_for(timeout=30_000)
    website_shot(page, "6-after-reload")
    visitor.assert_stayed_home()


def test_a_signed_in_customer_is_not_asked_who_they_are(
    stack: Stack, website: str, browser: Browser, contexts: list, monkeypatch
) -> None:
    visitor = Visitor(browser, contexts)
    page = visitor.page
    page.goto(website)
    page.fill("#account_number", "3201000001")
    page.fill("#holder_name", "张伟")
    page.click("#signin")
    assert "张*" in page.locator("#signed-in").inner_text()
    cookie = next(c for c in visitor.context.cookies() if c["name"] == "website_customer")
    assert cookie["httpOnly"] and cookie["secure"]
    website_shot(page, "7-signed-in")

    visitor.open_chat()
    visitor.say("查电费")
    bill = visitor.bot_says(re.compile("元"))
    assert "3201****01" in bill
    assert not any(IDENTITY_QUESTION.search(t) or "户号是多少" in t for t in visitor.bot_messages())
    website_shot(page, "8-signed-in-bill")

    monkeypatch.setenv("CUSTOMER_TOKEN_SECRET", CUSTOMER_SECRET)
    metadata = user_metadata(stack, visitor.session_id())
    assert metadata and all(vouched_account(m) == "3201000001" for m in metadata)
    assert all(m["customer"]["source"] == "website" for m in metadata)

    # signed out, the verified conversation stays behind: the next one starts afresh
    page.click(".rw-launcher")  # the open chat covers the sign-out button
    page.click("#signout")
    page.locator("#signin-form").wait_for()
    page.click("#banner-chat")
    visitor.bot_says(re.compile("您好"))
    assert not any("元" in t for t in visitor.bot_messages())
    visitor.assert_stayed_home()


def test_a_wrong_name_does_not_sign_in(website: str, browser: Browser, contexts: list) -> None:
    visitor = Visitor(browser, contexts)
    page = visitor.page
    page.goto(website)
    page.fill("#account_number", "3201000002")
    page.fill("#holder_name", "张伟")
    page.click("#signin")
    assert "户号或户主姓名不正确" in page.locator("#signin-error").inner_text()
    assert not any(c["name"] == "website_customer" for c in visitor.context.cookies())
    website_shot(page, "9-wrong-name")
    visitor.assert_stayed_home()
