"""What every page and endpoint of the console shares: who may open what, rendering a
template, answering JSON, refusing (401, 403) in the form the caller understands, and
running the sync services off the event loop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sanic import Request
from sanic.response import HTTPResponse, html, redirect
from sanic.response import json as json_response
from sqlalchemy.orm import sessionmaker

from bot import clock
from bot.config import PROJECT_ROOT, Settings
from bot.console import labels
from bot.console.security import LoginTokens
from bot.console.signin import StaffSession
from bot.console.staff import StaffUser
from bot.tickets.categories import CATEGORIES, REQUEST_TYPES, STATUSES

HERE = Path(__file__).resolve().parent
PUBLIC = "public"
# what each role may open: the whole of the console's access rules
PERMISSIONS: dict[str, frozenset[str]] = {
    "queue": frozenset({"agent", "supervisor", "admin"}),  # queue, conversations, return visits
    "override": frozenset({"supervisor", "admin"}),  # act on a conversation someone else holds
    "dashboard": frozenset({"supervisor", "trainer", "admin"}),
    "export": frozenset({"supervisor", "admin"}),  # the dashboard's CSV files
    "users": frozenset({"admin"}),
    "training": frozenset({"trainer", "admin"}),  # the trainers' NLU inbox: label, discard
    "signed_in": frozenset({"agent", "supervisor", "trainer", "admin"}),
}
NAV = (
    ("queue", "/", "队列"),
    ("queue", "/visits", "回访"),
    ("dashboard", "/dashboard", "数据看板"),
    ("training", "/training", "训练"),
    ("users", "/admin/users", "用户管理"),
)


@dataclass
class Console:
    """One app's state: where its data is, its settings, templates and login tokens, and
    the project whose training data the trainers' labels go into."""

    sessions: sessionmaker
    settings: Settings
    templates: Environment
    login_tokens: LoginTokens = field(default_factory=LoginTokens)
    project: Path = PROJECT_ROOT


def templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=True,  # customer text is always inert
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=labels.when,
        priority_name=labels.priority_name,
        frustration_word=labels.frustration_word,
        handoff_state=labels.handoff_state,
        iso=lambda moment: moment.isoformat() if moment else "",
        from_iso=datetime.fromisoformat,
        channel_name=lambda channel: labels.CHANNELS.get(channel, channel),
    )
    env.globals.update(
        CATEGORIES=CATEGORIES,
        REQUEST_TYPES=REQUEST_TYPES,
        STATUSES=STATUSES,
        PRIORITY_NAMES=labels.PRIORITY_NAMES,
        SPEAKERS=labels.SPEAKERS,
        EVENT_KINDS=labels.EVENT_KINDS,
        AUDIT_KINDS=labels.AUDIT_KINDS,
        sla_text=labels.sla_text,
    )
    return env


def allow(permission: str) -> Callable:
    """Mark a handler with the permission it needs (app.py's middleware checks it; a
    handler without a mark is refused to everyone)."""

    def mark(handler: Callable) -> Callable:
        handler.permission = permission
        return handler

    return mark


def may(user: StaffUser | None, permission: str) -> bool:
    return user is not None and user.role in PERMISSIONS.get(permission, frozenset())


def console(request: Request) -> Console:
    return request.app.ctx.console


def user_of(request: Request) -> StaffUser:
    return request.ctx.session.user


async def run(function: Callable, *args, **kwargs) -> Any:
    """A sync service call (database, company system, Rasa) off the event loop."""
    return await asyncio.to_thread(function, *args, **kwargs)


def now() -> datetime:
    return clock.now()


def render(request: Request, template: str, *, status: int = 200, **context) -> HTTPResponse:
    session: StaffSession | None = getattr(request.ctx, "session", None)
    user = session.user if session else None
    page = console(request).templates.get_template(template).render(
        user=user,
        csrf_token=session.csrf_token if session else "",
        nav=[(href, title) for permission, href, title in NAV if may(user, permission)],
        path=request.path,
        may=partial(may, user),
        server_now=now(),
        **context,
    )
    return html(page, status=status)


def wants_json(request: Request) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("accept", "")


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_plain)


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def answer(body: Any, status: int = 200) -> HTTPResponse:
    return json_response(body, status=status, dumps=to_json)


def refuse(request: Request, status: int, message: str, **extra) -> HTTPResponse:
    """An error the person can read: JSON for scripts, a page for browsers."""
    if wants_json(request):
        return answer({"error": message, **extra}, status=status)
    return render(request, "error.html", status=status, status_code=status, message=message, **extra)


def to_login(request: Request) -> HTTPResponse:
    if wants_json(request):
        return answer({"error": "请先登录"}, status=401)
    if request.method != "GET":  # a form posted after the session ended: back to a page after login
        return redirect("/login", status=302)
    target = request.path + (f"?{request.query_string}" if request.query_string else "")
    return redirect(f"/login?next={quote(target, safe='')}", status=302)


def see_other(location: str) -> HTTPResponse:
    """After a form: the browser loads `location` with GET (no resubmission on reload)."""
    return redirect(location, status=303)


def home_of(user: StaffUser) -> str:
    """Where a person lands after login: agents the queue, trainers their inbox."""
    if may(user, "queue"):
        return "/"
    return "/training" if may(user, "training") else "/dashboard"
