"""Signing in and out of the console, the lockout, the cookie's flags, the CSRF tokens and
who may open what: against a real server."""

from __future__ import annotations

import re
import subprocess
import time
import uuid

import pytest
import requests
from sqlalchemy import select

from bot.console import signin, staff
from bot.console.models import StaffAuditRow, StaffSessionRow
from bot.tickets.service import find_ticket
from tests.console.conftest import CSRF_FIELD, PASSWORD, Browser, start_console
from tests.e2e.servers import PROJECT, VENV_BIN

PAGES = ["/", "/visits", "/dashboard", "/admin/users", "/tickets/GD202611240001", "/dashboard/categories.csv"]
APIS = ["/api/queue", "/api/queue/stream", "/api/dashboard/categories", "/api/tickets/GD202611240001/stream"]


def _cookie_headers(response: requests.Response) -> list[str]:
    return response.raw.headers.getlist("Set-Cookie")


def _session_cookie(response: requests.Response) -> str:
    return next(c for c in _cookie_headers(response) if c.startswith("console_session="))


def _audit(console, username: str) -> list[str]:
    with console.sessions() as session:
        return list(session.scalars(select(StaffAuditRow.kind).where(StaffAuditRow.username == username)))


# --- signing in -------------------------------------------------------------------------


def test_login_with_the_right_password_opens_the_queue(console):
    user = console.user("agent", "张小坐")
    browser = Browser(console.url)
    response = browser.login(user.username, PASSWORD)
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    page = browser.get("/")
    assert page.status_code == 200
    assert "张小坐（坐席）" in page.text
    assert "login_ok" in _audit(console, user.username)


def test_login_with_a_wrong_password_is_refused(console):
    user = console.user("agent")
    browser = Browser(console.url)
    response = browser.login(user.username, "not-the-password")
    assert response.status_code == 401
    assert "用户名或密码错误" in response.text
    assert not any(c.startswith("console_session=") and "Max-Age=0" not in c for c in _cookie_headers(response))
    assert browser.get("/").status_code == 302
    assert _audit(console, user.username)[-1] == "login_failed"


def test_unknown_user_gets_the_same_answer_and_costs_the_same_time(console):
    known = console.user("agent")
    browser = Browser(console.url)
    unknown = browser.login(f"nobody{uuid.uuid4().hex[:6]}", "not-the-password")
    wrong = browser.login(known.username, "not-the-password")
    assert unknown.status_code == wrong.status_code == 401
    assert "用户名或密码错误" in unknown.text

    def fastest(username: str) -> float:
        times = []
        for _ in range(4):
            started = time.perf_counter()
            Browser(console.url).login(username, "not-the-password")
            times.append(time.perf_counter() - started)
        return min(times)

    other = console.user("agent")
    # without the dummy hash an unknown name answers in a few ms, a known one in tens
    assert fastest(f"ghost{uuid.uuid4().hex[:6]}") >= 0.5 * fastest(other.username)


def test_failures_are_logged_with_the_username_masked(console):
    user = console.user("agent")
    Browser(console.url).login(user.username, "not-the-password")
    log = console.log()
    assert user.username[0] + "*" * (len(user.username) - 1) in log
    assert user.username not in log


def test_five_failures_lock_the_name_until_the_lockout_passes(console):
    user = console.user("agent")
    browser = Browser(console.url)
    answers = [browser.login(user.username, "not-the-password") for _ in range(5)]
    assert [a.status_code for a in answers[:4]] == [401] * 4
    assert answers[4].status_code == 429  # the fifth failure locks

    sixth = browser.login(user.username, PASSWORD)  # the right password, refused unchecked
    assert sixth.status_code == 429
    assert re.search(r"尝试次数过多，请 \d+ 秒后再试", sixth.text)
    assert "login_locked" in _audit(console, user.username)

    deadline = time.monotonic() + 30
    while (response := browser.login(user.username, PASSWORD)).status_code == 429:
        assert time.monotonic() < deadline, "still locked after 30 s (lockout is 3 s)"
        time.sleep(0.2)
    assert response.status_code == 303
    assert staff.user_by_id(console.sessions, user.id).failed_logins == 0  # a success resets


def test_an_unknown_name_locks_like_a_known_one(console):
    browser = Browser(console.url)
    name = f"ghost{uuid.uuid4().hex[:6]}"
    answers = [browser.login(name, "not-the-password").status_code for _ in range(6)]
    assert answers == [401, 401, 401, 401, 429, 429]


def test_lock_doubles_with_each_further_failure_up_to_15_minutes():
    assert [signin.lock_seconds(n, 60) for n in (4, 5, 6, 7)] == [0, 60, 120, 240]
    assert signin.lock_seconds(30, 60) == 15 * 60


# --- the cookie and signing out ---------------------------------------------------------


def test_session_cookie_is_http_only_and_strict(console):
    user = console.user("agent")
    cookie = _session_cookie(Browser(console.url).login(user.username, PASSWORD))
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/;" in cookie + ";"
    assert "Secure" not in cookie  # CONSOLE_COOKIE_SECURE=0 on this server
    token = cookie.split(";")[0].split("=", 1)[1]
    with console.sessions() as session:
        stored = session.scalars(select(StaffSessionRow.token_sha256)).all()
    assert token not in stored  # only its SHA-256 is kept
    assert len(token) >= 43  # 32 random bytes


def test_session_cookie_is_secure_by_default(sqlite_url, tmp_path):
    secure = start_console(sqlite_url, tmp_path, CONSOLE_COOKIE_SECURE="1")
    try:
        user = secure.user("agent")
        form = requests.get(secure.url + "/login", timeout=10)
        login_cookie = next(c for c in _cookie_headers(form) if c.startswith("console_login="))
        assert "Secure" in login_cookie
        # requests keeps Secure cookies for https: hand the login form's cookie over by hand
        response = requests.post(
            secure.url + "/login",
            data={"username": user.username, "password": PASSWORD, "csrf_token": CSRF_FIELD.search(form.text)[1]},
            headers={"Cookie": login_cookie.split(";")[0]},
            allow_redirects=False,
            timeout=10,
        )
        assert response.status_code == 303
        cookie = _session_cookie(response)
        assert "Secure" in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
    finally:
        secure.stop()
        secure.rasa.close()


def test_logout_ends_the_session(console):
    browser = console.signed_in("agent")
    cookie = browser.http.cookies["console_session"]
    response = browser.post("/logout")
    assert response.status_code == 303
    assert response.headers["Location"] == "/login"
    assert "logout" in _audit(console, browser.user.username)
    replay = requests.get(console.url + "/", cookies={"console_session": cookie}, allow_redirects=False, timeout=10)
    assert replay.status_code == 302  # the old cookie signs nobody in


def test_session_expires(sqlite_url, tmp_path):
    short = start_console(sqlite_url, tmp_path, CONSOLE_SESSION_HOURS="0.0005")  # 1.8 s
    try:
        browser = short.signed_in("agent")
        assert browser.get("/").status_code == 200
        deadline = time.monotonic() + 30
        while browser.get("/").status_code == 200:
            assert time.monotonic() < deadline, "the session outlived its 1.8 s"
            time.sleep(0.2)
        assert browser.get("/").headers["Location"].startswith("/login")
    finally:
        short.stop()
        short.rasa.close()


def test_deactivated_person_is_signed_out_at_once(console):
    admin = console.signed_in("admin")
    agent = console.signed_in("agent")
    assert admin.post(f"/admin/users/{agent.user.id}/active", {"active": "0"}).status_code == 303
    assert agent.get("/").status_code == 302
    assert agent.login(agent.user.username, PASSWORD).status_code == 401


# --- who may open what ------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_pages_send_strangers_to_the_login(console, path):
    response = requests.get(console.url + path, allow_redirects=False, timeout=10)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize("path", APIS)
def test_apis_answer_strangers_401(console, path):
    response = requests.get(console.url + path, allow_redirects=False, timeout=10)
    assert response.status_code == 401
    assert response.json() == {"error": "请先登录"}


def test_posts_from_strangers_are_refused(console):
    number = console.ticket()
    response = requests.post(console.url + f"/tickets/{number}/claim", allow_redirects=False, timeout=10)
    assert response.status_code == 302
    assert find_ticket(console.sessions, number).assigned_agent is None


@pytest.mark.parametrize("path", ["/dashboard", "/admin/users", "/dashboard/categories.csv", "/api/dashboard/sla"])
def test_agent_may_not_open_the_dashboard_or_the_users(console, path):
    agent = console.signed_in("agent")
    response = agent.get(path)
    assert response.status_code == 403
    assert "您没有权限访问此页面" in response.text


def test_nav_shows_only_what_the_role_may_open(console):
    nav = re.compile(r'<nav id="nav".*?</nav>', re.S)
    agent = nav.search(console.signed_in("agent").get("/").text)[0]
    assert "/visits" in agent and "/dashboard" not in agent and "/admin/users" not in agent
    supervisor = nav.search(console.signed_in("supervisor").get("/").text)[0]
    assert "/dashboard" in supervisor and "/admin/users" not in supervisor
    admin = nav.search(console.signed_in("admin").get("/").text)[0]
    assert "/dashboard" in admin and "/admin/users" in admin


def test_trainer_lands_on_training_and_sees_the_dashboard_but_no_queue(console):
    trainer = console.signed_in("trainer")
    assert trainer.get("/").headers["Location"] == "/training"
    assert trainer.get("/training").status_code == 200
    assert trainer.get("/dashboard").status_code == 200
    assert "导出 CSV" not in trainer.get("/dashboard").text
    for path in ("/visits", "/api/queue", "/dashboard/categories.csv", "/admin/users"):
        assert trainer.get(path).status_code == 403, path


def test_supervisor_may_not_manage_users(console):
    assert console.signed_in("supervisor").get("/admin/users").status_code == 403


# --- CSRF --------------------------------------------------------------------------------


def test_claim_without_or_with_a_wrong_csrf_token_changes_nothing(console):
    agent = console.signed_in("agent")
    number = console.ticket()
    for token in ("", "forged-token"):
        form = agent.post(f"/tickets/{number}/claim", csrf=token)
        assert form.status_code == 403
        assert "安全校验未通过" in form.text
        script = agent.post_json(f"/tickets/{number}/claim", csrf=token)
        assert script.status_code == 403
    assert find_ticket(console.sessions, number).assigned_agent is None
    assert agent.post(f"/tickets/{number}/claim").status_code == 303  # the real token works
    assert find_ticket(console.sessions, number).assigned_agent == agent.user.username


def test_another_sessions_token_does_not_pass(console):
    agent, other = console.signed_in("agent"), console.signed_in("agent")
    number = console.ticket()
    assert agent.post(f"/tickets/{number}/claim", csrf=other.csrf).status_code == 403
    assert find_ticket(console.sessions, number).assigned_agent is None


def test_creating_a_user_without_the_token_creates_nobody(console):
    admin = console.signed_in("admin")
    name = f"new{uuid.uuid4().hex[:6]}"
    form = {"username": name, "display_name": "新人", "role": "agent", "password": PASSWORD, "password_again": PASSWORD}
    assert admin.post("/admin/users", form, csrf="").status_code == 403
    assert name not in {u.username for u in staff.users(console.sessions)}
    assert admin.post("/admin/users", form).status_code == 303
    assert name in {u.username for u in staff.users(console.sessions)}


def test_login_form_needs_its_own_token(console):
    user = console.user("agent")
    form = {"username": user.username, "password": PASSWORD}
    response = requests.post(console.url + "/login", data=form, allow_redirects=False, timeout=10)
    assert response.status_code == 403
    browser = Browser(console.url)
    token = CSRF_FIELD.search(browser.get("/login").text)[1]
    forged = browser.http.post(
        console.url + "/login",
        data={"username": user.username, "password": PASSWORD, "csrf_token": token[::-1]},
        allow_redirects=False,
        timeout=10,
    )
    assert forged.status_code == 403
    assert "login_ok" not in _audit(console, user.username)


# --- the command line ---------------------------------------------------------------------


def _cli(database_url: str, *args: str, password: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "python"), "-m", "bot", "console", *args, "--password-stdin", "--database-url", database_url],
        cwd=PROJECT,
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_create_admin_from_the_command_line(console):
    name = f"root{uuid.uuid4().hex[:6]}"
    made = _cli(console.database_url, "create-admin", name, "--display-name", "系统管理员", password=PASSWORD)
    assert made.returncode == 0, made.stderr
    browser = Browser(console.url)
    assert browser.login(name, PASSWORD).status_code == 303
    assert browser.get("/admin/users").status_code == 200

    again = _cli(console.database_url, "create-admin", name, password=PASSWORD)
    assert again.returncode == 1
    assert "exists" in again.stderr


def test_command_line_refuses_a_weak_password(console):
    name = f"weak{uuid.uuid4().hex[:6]}"
    made = _cli(console.database_url, "create-user", name, "--role", "agent", password="short")
    assert made.returncode == 2
    assert "10 characters" in made.stderr
    assert name not in {u.username for u in staff.users(console.sessions)}


def test_create_user_gives_the_role(console):
    name = f"sup{uuid.uuid4().hex[:6]}"
    made = _cli(console.database_url, "create-user", name, "--role", "supervisor", password=PASSWORD)
    assert made.returncode == 0, made.stderr
    assert {u.username: u.role for u in staff.users(console.sessions)}[name] == "supervisor"


def test_admin_changes_role_and_resets_password(console):
    admin = console.signed_in("admin")
    agent = console.signed_in("agent")
    assert admin.post(f"/admin/users/{agent.user.id}/role", {"role": "supervisor"}).status_code == 303
    assert agent.get("/dashboard").status_code == 200  # the new role counts at once
    new = "another-long-password"
    reset = admin.post(f"/admin/users/{agent.user.id}/password", {"password": new, "password_again": new})
    assert reset.status_code == 303
    assert agent.get("/").status_code == 302  # signed out everywhere
    assert Browser(console.url).login(agent.user.username, new).status_code == 303
    assert admin.post(f"/admin/users/{admin.user.id}/active", {"active": "0"}).status_code == 400
    assert staff.user_by_id(console.sessions, admin.user.id).active



def test_not_found_is_a_chinese_page_with_the_same_headers(console):
    agent = console.signed_in("agent")
    for path in ("/nothing-here", "/tickets/GD199901019999"):
        response = agent.get(path)
        assert response.status_code == 404
        assert "找不到这个页面或工单" in response.text
        assert '<html lang="zh-CN">' in response.text
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"


def test_ensure_admin_creates_the_admin_once(console):
    name = f"first{uuid.uuid4().hex[:6]}"
    command = [str(VENV_BIN / "python"), "-m", "bot", "console", "ensure-admin", name]
    command += ["--database-url", console.database_url]
    first = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    password = re.search(r"password \(shown only now\): (\S+)", first.stdout)[1]
    again = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and again.stdout == ""
    browser = Browser(console.url)
    assert browser.login(name, password).status_code == 303
    assert browser.get("/admin/users").status_code == 200
