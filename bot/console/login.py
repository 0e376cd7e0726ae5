"""Signing in and out. The session cookie is HttpOnly, SameSite=Strict, Secure (unless
CONSOLE_COOKIE_SECURE=0) and carries a random token whose SHA-256 is all the database
keeps; five wrong passwords lock the name (signin.sign_in)."""

from __future__ import annotations

from sanic import Request, Sanic
from sanic.response import HTTPResponse

from bot.console import signin
from bot.console.security import LOGIN_COOKIE, SESSION_COOKIE, safe_next
from bot.console.web import PUBLIC, allow, console, home_of, now, render, run, see_other


@allow(PUBLIC)
async def login_page(request: Request) -> HTTPResponse:
    session = request.ctx.session
    if session is not None:
        return see_other(safe_next(request.args.get("next")) or home_of(session.user))
    return _form(request)


@allow(PUBLIC)
async def login_submit(request: Request) -> HTTPResponse:
    app = console(request)
    username = (request.form.get("username") or "").strip()
    password = request.form.get("password") or ""
    if not username or not password:
        return _form(request, "请输入用户名和密码", username=username, status=400)
    result = await run(
        signin.sign_in,
        app.sessions,
        username,
        password,
        now(),
        lockout_seconds=app.settings.console_lockout_seconds,
        ip=request.ip,
    )
    if result.outcome == "locked":
        return _form(request, f"尝试次数过多，请 {result.retry_after} 秒后再试", username=username, status=429)
    if result.outcome != "ok":
        return _form(request, "用户名或密码错误", username=username, status=401)
    hours = app.settings.console_session_hours
    token, _session = await run(signin.open_session, app.sessions, result.user, now(), hours)
    response = see_other(safe_next(request.form.get("next")) or home_of(result.user))
    _cookie(response, request, SESSION_COOKIE, token, int(hours * 3600), "/")
    _cookie(response, request, LOGIN_COOKIE, "", 0, "/login")  # used up
    return response


@allow("signed_in")
async def logout(request: Request) -> HTTPResponse:
    await run(signin.close_session, console(request).sessions, request.cookies.get(SESSION_COOKIE), now(), request.ip)
    response = see_other("/login")
    _cookie(response, request, SESSION_COOKIE, "", 0, "/")
    return response


def _form(request: Request, error: str | None = None, *, username: str = "", status: int = 200) -> HTTPResponse:
    form_token, cookie = console(request).login_tokens.issue(request.cookies.get(LOGIN_COOKIE))
    next_path = safe_next(request.form.get("next") if request.method == "POST" else request.args.get("next"))
    response = render(
        request, "login.html", status=status, error=error, username=username, login_csrf=form_token, next=next_path
    )
    _cookie(response, request, LOGIN_COOKIE, cookie, 3600, "/login")
    return response


def _cookie(response: HTTPResponse, request: Request, name: str, value: str, seconds: int, path: str) -> None:
    """Set (or, with 0 seconds, forget) a cookie with the same flags either way: a browser
    keeps a Secure cookie against a plain one of the same name."""
    response.cookies[name] = value
    cookie = response.cookies[name]
    cookie["httponly"] = True
    cookie["samesite"] = "Strict"
    cookie["path"] = path
    cookie["max-age"] = seconds
    if console(request).settings.console_cookie_secure:
        cookie["secure"] = True


def add_routes(app: Sanic) -> None:
    app.add_route(login_page, "/login", methods=["GET"], name="login_page")
    app.add_route(login_submit, "/login", methods=["POST"], name="login_submit")
    app.add_route(logout, "/logout", methods=["POST"], name="logout")
