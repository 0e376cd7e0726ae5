"""The agents' console in a real browser (Debian's headless Chromium, driven by Playwright;
no browser is downloaded), against the real console, Rasa and action servers, database,
and the customer's end of Rasa's callback channel; the trainers' page against a console
alone. Screenshots of each page are saved in tests/artifacts/screenshots/."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from bot import clock
from bot.console import staff
from bot.db import session_factory
from bot.schema import upgrade
from bot.tickets.service import find_ticket
from bot.training import inbox
from tests.e2e.conftest import ARTIFACTS, RASA_TOKEN, Stack
from tests.e2e.servers import VENV_BIN, CallbackCustomer, Process, free_port, start, wait_until_up
from tests.training_project import scratch_project, training_files

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-gpu",
    "--no-first-run",
    "--disable-sync",
]
SHOTS = ARTIFACTS / "screenshots"
PASSWORD = "browser-test-password"
NUMBER = re.compile(r"GD\d{12}")
LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def console(stack: Stack) -> Iterator[str]:
    """The console as scripts/run.sh starts it (Secure cookies, the Rasa token)."""
    port = free_port()
    env = {
        "DATABASE_URL": stack.database_url,
        "UTILITY_BACKEND": "http",
        "UTILITY_API_URL": stack.proxy.url,
        "RASA_URL": stack.rasa_url,
        "RASA_TOKEN": RASA_TOKEN,
        "CONSOLE_COOKIE_SECURE": "1",
        "CONSOLE_LOCKOUT_SECONDS": "60",
    }
    process: Process = start(
        "console", [str(VENV_BIN / "python"), "-m", "bot", "console", "serve", "--port", str(port)], env, ARTIFACTS
    )
    try:
        wait_until_up(process, f"http://127.0.0.1:{port}/login")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: scripts/system-deps.sh installs it")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def person(stack: Stack):
    """A new staff account of a role; its user name."""

    def make(role: str, display_name: str) -> str:
        name = f"{role}-{uuid.uuid4().hex[:6]}"
        staff.create_user(session_factory(stack.database_url), name, display_name, role, PASSWORD, clock.now())
        return name

    return make


@pytest.fixture
def contexts(browser: Browser) -> Iterator[list[BrowserContext]]:
    opened: list[BrowserContext] = []
    yield opened
    for context in opened:
        context.close()


def signed_in(browser: Browser, contexts: list, console: str, username: str, viewport=LAPTOP) -> Page:
    context = browser.new_context(viewport=viewport, locale="zh-CN")
    contexts.append(context)
    page = context.new_page()
    # nothing may be loaded from another host (no CDN, no web fonts)
    page.on("request", lambda request: _same_origin(request.url, console))
    page.goto(f"{console}/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(re.compile(r"^(?!.*/login).*$"))
    return page


def _same_origin(url: str, console: str) -> None:
    assert url.startswith((console, "data:", "blob:")), f"the page loaded {url}"


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def handed_off(stack: Stack, first: str | None = None) -> tuple[CallbackCustomer, str]:
    customer = CallbackCustomer(stack.rasa_url, stack.callbacks, f"web-{uuid.uuid4().hex[:10]}")
    if first:
        customer.say(first)
    customer.say("转人工")
    queued = customer.wait_for(lambda t: "转接人工客服" in t)
    return customer, NUMBER.search(queued)[0]


def test_an_agent_takes_a_conversation_from_queue_to_satisfaction(
    stack: Stack, console: str, browser: Browser, contexts: list, person
) -> None:
    agent = person("agent", "王芳")
    page = signed_in(browser, contexts, console, agent)
    page.wait_for_selector("#queue")
    page.evaluate("window.__loadedOnce = true")

    customer, number = handed_off(stack, "电费怎么这么高")
    row = page.wait_for_selector(f'.queue-item[data-ticket="{number}"]', timeout=30_000)
    assert page.evaluate("window.__loadedOnce") is True  # it arrived live, without a reload
    assert "live" in (row.get_attribute("class") or "")
    shot(page, "1-queue")

    page.click(f'.queue-item[data-ticket="{number}"] button.claim')
    page.wait_for_url(re.compile(rf"/tickets/{number}(\?|$)"))
    transcript = page.locator("#transcript")
    assert "转人工" in transcript.inner_text()
    assert "王芳" in page.locator("#holder").inner_text()

    page.fill("#reply-text", "您好，我是客服王芳，马上帮您核对电费。")
    page.click("#reply-send")
    customer.wait_for(lambda t: t == "【人工客服】您好，我是客服王芳，马上帮您核对电费。")

    customer.say("好的，我在线等")
    page.wait_for_selector('#transcript .line.customer:has-text("我在线等")', timeout=30_000)
    customer.say("你们到底管不管！！！气死我了")  # the agent sees the mood rise, live
    page.wait_for_selector("#frustration.level-2, #frustration.level-3", timeout=30_000)
    attack = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
    customer.say(attack)
    line = page.wait_for_selector('#transcript .line.customer:has-text("window.__xss")', timeout=30_000)
    assert "<script>" in line.inner_text()  # shown as text, not run
    assert page.evaluate("window.__xss") is None
    shot(page, "2-conversation")

    # while the agent had it, the bot's policies answered none of the customer's messages
    events = stack.tracker_events(customer.sender)
    relayed = [e for e in events if e["event"] == "action" and e["name"] == "action_relay_to_agent"]
    assert len(relayed) >= 2 and {e["policy"] for e in relayed} == {"HandoffPolicy"}

    page.fill("#resolve-text", "经核实，上月为估抄，本月已按实际读数重新计算，多收的电费会在下期抵扣。")
    page.click("#resolve")
    customer.wait_for(lambda t: "已办结" in t and "下期抵扣" in t)
    customer.wait_for(lambda t: "1到5分" in t)
    customer.say("4分，处理得挺快")
    customer.wait_for(lambda t: "4分" in t and "感谢" in t)
    ticket = find_ticket(session_factory(stack.database_url), number)
    assert (ticket.status, ticket.satisfaction, ticket.satisfaction_comment) == ("resolved", 4, "处理得挺快")

    page.goto(f"{console}/visits")
    visit = page.wait_for_selector(f'.visit[data-ticket="{number}"]')
    assert "4" in visit.inner_text()
    shot(page, "3-visits")


def test_two_agents_claim_at_once_one_wins_the_other_is_told(
    stack: Stack, console: str, browser: Browser, contexts: list, person
) -> None:
    first = signed_in(browser, contexts, console, person("agent", "赵一"))
    second = signed_in(browser, contexts, console, person("agent", "钱二"))
    _customer, number = handed_off(stack)
    claim = f'.queue-item[data-ticket="{number}"] button.claim'
    for page in (first, second):
        page.wait_for_selector(claim, timeout=30_000)
    first.click(claim, no_wait_after=True)
    second.click(claim, no_wait_after=True)
    first.wait_for_load_state()
    second.wait_for_load_state()

    def won(page: Page) -> bool:
        # the conversation view (the winner), or the queue telling who was first (the loser);
        # locators, not a JS predicate: the console's CSP forbids evaluating strings
        page.locator("#transcript").or_(page.locator("#queue-message:not(:empty)")).first.wait_for(timeout=15_000)
        return f"/tickets/{number}" in page.url

    results = [won(first), won(second)]
    assert sorted(results) == [False, True]
    loser = second if results[0] else first
    winner_name = "赵一" if results[0] else "钱二"
    message = loser.locator("#queue-message").inner_text()
    assert "已被" in message and winner_name in message
    holder = find_ticket(session_factory(stack.database_url), number).assigned_agent
    assert holder is not None and holder.startswith("agent-")


def test_pages_need_login_and_the_right_role(
    stack: Stack, console: str, browser: Browser, contexts: list, person
) -> None:
    anonymous = browser.new_context()
    contexts.append(anonymous)
    page = anonymous.new_page()
    for path in ("/", "/visits", "/dashboard", "/admin/users"):
        page.goto(console + path)
        assert "/login" in page.url, path

    agent = signed_in(browser, contexts, console, person("agent", "孙三"))
    for path in ("/dashboard", "/admin/users"):
        response = agent.goto(console + path)
        assert response.status == 403 and "您没有权限访问此页面" in agent.content()

    cookie = next(c for c in agent.context.cookies() if c["name"] == "console_session")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"

    _customer, number = handed_off(stack)
    # a POST from the signed-in page itself (its cookie goes along), without the CSRF token
    status = agent.evaluate(
        "n => fetch(`/tickets/${n}/claim`, {method: 'POST', body: new URLSearchParams(), redirect: 'manual'})"
        ".then(r => r.status)",
        number,
    )
    assert status == 403
    assert find_ticket(session_factory(stack.database_url), number).assigned_agent is None

    supervisor = signed_in(browser, contexts, console, person("supervisor", "周四"))
    supervisor.goto(f"{console}/dashboard")
    supervisor.wait_for_selector("#charts canvas")
    head = supervisor.evaluate(
        "() => fetch('/dashboard/categories.csv').then(r => r.arrayBuffer()).then(b => [...new Uint8Array(b, 0, 3)])"
    )
    assert head == [0xEF, 0xBB, 0xBF]  # UTF-8 with BOM: Excel shows the Chinese headers
    shot(supervisor, "4-dashboard")


def test_pages_fit_a_phone(stack: Stack, console: str, browser: Browser, contexts: list, person) -> None:
    page = signed_in(browser, contexts, console, person("agent", "吴五"), viewport=PHONE)
    _customer, number = handed_off(stack)
    page.wait_for_selector(f'.queue-item[data-ticket="{number}"]', timeout=30_000)
    for path, name in (
        ("/", "5-queue-phone"),
        (f"/tickets/{number}", "6-conversation-phone"),
        ("/visits", "7-visits-phone"),
    ):
        page.goto(console + path)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow}px wider than a phone"
        shot(page, name)


def test_wrong_passwords_are_slowed_down_after_five(console: str, browser: Browser, contexts: list, person) -> None:
    name = person("agent", "郑六")
    context = browser.new_context()
    contexts.append(context)
    page = context.new_page()
    page.goto(f"{console}/login")
    for _ in range(5):
        page.fill("#username", name)
        page.fill("#password", "wrong-password-123")
        page.click("#login-submit")
        page.wait_for_selector("#login-error")
    page.fill("#username", name)
    page.fill("#password", PASSWORD)  # the right one, but too late
    page.click("#login-submit")
    assert "尝试次数过多" in page.locator("#login-error").inner_text()
    assert "/login" in page.url
    shot(page, "8-login-locked")


@pytest.fixture(scope="module")
def trainers_console(tmp_path_factory) -> Iterator[tuple[str, str, Path]]:
    """A console alone (the trainers' page needs no Rasa) on a database of its own, writing
    labels into a scratch copy of the project: (url, database url, project)."""
    database_url = f"sqlite:///{tmp_path_factory.mktemp('training') / 'bot.db'}"
    upgrade(database_url)
    project = scratch_project(tmp_path_factory.mktemp("project"))
    port = free_port()
    env = {
        "DATABASE_URL": database_url,
        "UTILITY_BACKEND": "sql",
        "CONSOLE_COOKIE_SECURE": "1",
        "TRAINING_PROJECT": str(project),
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    process = start(
        "console-training",
        [str(VENV_BIN / "python"), "-m", "bot", "console", "serve", "--port", str(port)],
        env,
        ARTIFACTS,
    )
    try:
        wait_until_up(process, f"http://127.0.0.1:{port}/login")
        yield f"http://127.0.0.1:{port}", database_url, project
    finally:
        process.stop()


def test_a_trainer_labels_an_inbox_message_and_sees_a_refusal_explained(
    trainers_console: tuple[str, str, Path], browser: Browser, contexts: list
) -> None:
    url, database_url, project = trainers_console
    sessions = session_factory(database_url)

    def unsure(text: str, times: int) -> int:
        for n in range(times):
            key = inbox.sighting_key(f"browser-{uuid.uuid4().hex}", str(n))
            item = inbox.collect(sessions, text, key=key, reason="fallback", channel="wechat", moment=clock.now())
        return item

    hazard = unsure("楼下电线杆上的线垂下来快碰到人了 电话13812345678", 2)
    conflict = unsure("查电费", 1)
    name = f"trainer-{uuid.uuid4().hex[:6]}"
    staff.create_user(sessions, name, "钱训练", "trainer", PASSWORD, clock.now())
    page = signed_in(browser, contexts, url, name)
    page.wait_for_url(re.compile(r"/training$"))  # a trainer's home
    item = page.locator(f"#item-{hazard}")
    assert "<手机号>" in item.locator(".text").inner_text() and "13812345678" not in page.content()
    assert "2 次" in item.locator(".count").inner_text()
    shot(page, "9-training-inbox")

    before = training_files(project)
    page.fill(f"#intent-{conflict}", "query_outage")
    page.click(f"#item-{conflict} button.label-accept")
    problems = page.locator(f"#problems-{conflict}")
    problems.wait_for(timeout=60_000)
    assert "query_bill" in problems.inner_text() and "一句话只能属于一个意图" in problems.inner_text()
    assert page.locator(f"#intent-{conflict}").input_value() == "query_outage"
    assert training_files(project) == before
    shot(page, "10-training-refused")

    page.fill(f"#intent-{hazard}", "report_hazard")
    assert page.locator(f"#item-{hazard} .topic-field").is_hidden()  # an existing intent: no topic asked
    page.click(f"#item-{hazard} button.label-accept")
    page.wait_for_url(re.compile(r"notice=labelled"), timeout=120_000)
    notice = page.locator("#notice").inner_text()
    assert notice.startswith("已写入 data/nlu/outage.yml：") and "电线杆" in notice
    assert page.locator(f"#item-{hazard}").count() == 0
    assert "电线杆" in (project / "data" / "nlu" / "outage.yml").read_text(encoding="utf-8")
    shot(page, "11-training-labelled")
