"""The website's web app (Sanic): the home page with the chat widget, the demo sign-in and
sign-out, the static files, and the security headers on every answer."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sanic import Request, Sanic
from sanic.response import HTTPResponse, html, redirect

from bot.config import Settings, load_settings
from bot.known_customer import vouch
from bot.masking import mask_account, mask_name
from bot.utility import account_or_none
from bot.website import security
from bot.website.signin import COOKIE, SESSION_SECONDS, SignInRefused, cookie_value, customer_of, sign_in

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
DEMO_ACCOUNT = ("3201000001", "张伟")


def create_app(settings: Settings | None = None) -> Sanic:
    """A website with these settings (default: the environment's). Each call makes a new app."""
    settings = settings or load_settings()
    app = Sanic(f"website-{uuid.uuid4().hex[:12]}")
    app.config.update(REQUEST_MAX_SIZE=100_000, FALLBACK_ERROR_FORMAT="html")
    app.ctx.settings = settings
    app.ctx.headers = security.headers(settings.rasa_public_url)
    app.ctx.templates = Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined
    )
    app.static("/static", str(HERE / "static"), name="static")
    app.add_route(home, "/", methods=["GET"])
    app.add_route(post_sign_in, "/signin", methods=["POST"])
    app.add_route(post_sign_out, "/signout", methods=["POST"])
    app.register_middleware(_same_origin_posts, "request")
    app.register_middleware(_secure_headers, "response")
    return app


async def home(request: Request) -> HTTPResponse:
    return await _page(request)


async def post_sign_in(request: Request) -> HTTPResponse:
    settings: Settings = request.app.ctx.settings
    if not settings.customer_token_secret:
        return await _page(request, error="网上营业厅登录暂未开放", status=503)
    try:
        number = await asyncio.to_thread(
            sign_in, request.form.get("account_number", ""), request.form.get("holder_name", "")
        )
    except SignInRefused as refused:
        return await _page(request, error=str(refused), status=400)
    log.info("website: customer %s signed in", mask_account(number))
    response = redirect("/", status=303)
    _cookie(response, settings, cookie_value(number, settings.customer_token_secret), SESSION_SECONDS)
    return response


async def post_sign_out(request: Request) -> HTTPResponse:
    response = redirect("/", status=303)
    _cookie(response, request.app.ctx.settings, "", 0)
    return response


async def _page(request: Request, error: str = "", status: int = 200) -> HTTPResponse:
    settings: Settings = request.app.ctx.settings
    customer = customer_of(request.cookies.get(COOKIE), settings.customer_token_secret)
    greeting, token = "", None
    if customer:
        account = await asyncio.to_thread(account_or_none, customer.account_number)
        name = mask_name(account.holder_name) if account else "尊敬的客户"
        greeting = f"{name}（户号 {mask_account(customer.account_number)}）"
        # the chat vouches for the customer only as long as the site's sign-in lasts
        token = vouch(customer.account_number, "website", lifetime_seconds=customer.expires - int(time.time()))
    page = request.app.ctx.templates.get_template("index.html").render(
        customer=greeting,
        error=error,
        account_given=request.form.get("account_number", "")[:14] if error else "",
        sign_in_open=bool(settings.customer_token_secret),
        demo_account=DEMO_ACCOUNT,
        chat=_chat_config(settings, token, customer.account_number if customer else ""),
    )
    return html(page, status=status)


def _chat_config(settings: Settings, token: dict | None, owner: str) -> dict:
    """What site.js gives the widget: where Rasa's socket.io is, and who is signed in."""
    url = urlsplit(settings.rasa_public_url)
    return {
        "socketUrl": f"{url.scheme}://{url.netloc}",
        "socketPath": url.path.rstrip("/") + "/socket.io/",
        "customer": token,
        "owner": owner,  # a conversation begun by a signed-in customer is not carried past them
    }


def _cookie(response: HTTPResponse, settings: Settings, value: str, seconds: int) -> None:
    response.cookies[COOKIE] = value
    cookie = response.cookies[COOKIE]
    cookie["httponly"] = True
    cookie["samesite"] = "Lax"
    cookie["path"] = "/"
    cookie["max-age"] = seconds
    if settings.website_cookie_secure:
        cookie["secure"] = True


async def _same_origin_posts(request: Request) -> HTTPResponse | None:
    """Forms are posted only from this site (a neighbour's page cannot sign a visitor in
    or out): browsers name the page's origin on every POST."""
    if request.method != "POST":
        return None
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        log.warning("website: POST %s from %s refused", request.path, origin)
        return html("<!doctype html><title>403</title><p>请求来源不正确</p>", status=403)
    return None


async def _secure_headers(request: Request, response: HTTPResponse) -> None:
    for name, value in request.app.ctx.headers.items():
        response.headers[name] = value
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"  # the page can carry the customer's token
