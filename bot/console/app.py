"""The console's web app (Sanic): `create_app()` wires the pages, checks every request
(signed in, allowed for the role, CSRF token on every change) and sets the security
headers on every answer."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

from sanic import Request, Sanic
from sanic.exceptions import MethodNotSupported, NotFound, SanicException
from sanic.response import HTTPResponse

from bot.config import load_settings
from bot.console import admin, conversation, dashboard, login, queue, ticket_actions, training, visits
from bot.console.security import HEADERS, LOGIN_COOKIE, SESSION_COOKIE, same_token
from bot.console.signin import find_session
from bot.console.web import HERE, PUBLIC, Console, may, now, refuse, run, templates, to_login
from bot.db import session_factory
from bot.tickets.errors import TicketNotFound, TicketStoreUnavailable

log = logging.getLogger(__name__)
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_REFUSED = "安全校验未通过（页面可能已过期），请刷新页面后重试。"


def create_app(database_url: str | None = None, project: Path | None = None) -> Sanic:
    """A console on `database_url` (default: DATABASE_URL) whose trainers write into the
    training data of `project` (default: TRAINING_PROJECT, this checkout). Each call
    makes a new app."""
    settings = load_settings()
    app = Sanic(f"console-{uuid.uuid4().hex[:12]}")
    app.config.update(
        REQUEST_MAX_SIZE=1_000_000,
        GRACEFUL_SHUTDOWN_TIMEOUT=2.0,  # open live streams must not hold a restart up
        FALLBACK_ERROR_FORMAT="html",
    )
    app.ctx.console = Console(
        session_factory(database_url or settings.database_url),
        settings,
        templates(),
        project=project or settings.training_project,
    )
    app.static("/static", str(HERE / "static"), name="static")
    for module in (login, queue, conversation, ticket_actions, visits, dashboard, admin, training):
        module.add_routes(app)
    app.register_middleware(_check_request, "request")
    app.register_middleware(_secure_headers, "response")
    app.error_handler.add(NotFound, _not_found)
    app.error_handler.add(TicketNotFound, _not_found)
    app.error_handler.add(MethodNotSupported, _not_allowed)
    app.error_handler.add(TicketStoreUnavailable, _store_down)
    app.error_handler.add(Exception, _failed)
    return app


async def _check_request(request: Request) -> HTTPResponse | None:
    request.ctx.session = None
    if request.path.startswith("/static/"):
        return None
    console = request.app.ctx.console
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        request.ctx.session = await run(find_session, console.sessions, token, now())
    permission = getattr(request.route.handler, "permission", None) if request.route else None
    if permission == PUBLIC:
        if request.method in UNSAFE and not console.login_tokens.check(
            request.form.get("csrf_token"), request.cookies.get(LOGIN_COOKIE)
        ):
            return refuse(request, 403, CSRF_REFUSED)
        return None
    if request.ctx.session is None:
        return to_login(request)
    if request.route is None:
        return None  # no such page: the not-found handler answers
    if not may(request.ctx.session.user, permission or ""):
        return refuse(request, 403, "您没有权限访问此页面")
    if request.method in UNSAFE:
        given = request.headers.get("x-csrf-token") or request.form.get("csrf_token")
        if not same_token(given, request.ctx.session.csrf_token):
            log.warning("console: %s %s refused, CSRF token missing or wrong", request.method, request.path)
            return refuse(request, 403, CSRF_REFUSED)
    return None


async def _secure_headers(request: Request, response: HTTPResponse) -> None:
    for name, value in HEADERS.items():
        response.headers[name] = value
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"  # pages carry customers' data


def _session_of(request: Request) -> None:
    if not hasattr(request.ctx, "session"):
        request.ctx.session = None


async def _not_found(request: Request, _error: Exception) -> HTTPResponse:
    _session_of(request)
    return refuse(request, 404, "找不到这个页面或工单")


async def _not_allowed(request: Request, _error: Exception) -> HTTPResponse:
    _session_of(request)
    return refuse(request, 405, "不支持这种请求方式")


async def _store_down(request: Request, error: Exception) -> HTTPResponse:
    _session_of(request)
    log.warning("console: ticket store unavailable: %s", error)
    return refuse(request, 503, "工单系统暂时无法访问，请稍后再试")


async def _failed(request: Request, error: Exception) -> HTTPResponse:
    _session_of(request)
    if isinstance(error, SanicException) and error.status_code < 500:
        return refuse(request, error.status_code, "请求有误，请返回重试")
    log.exception("console: %s %s failed", request.method, request.path)
    return refuse(request, 500, "系统出错了，请稍后再试")
