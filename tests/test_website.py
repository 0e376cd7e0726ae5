"""The website (bot/website) without a browser: the vendored widget is the pinned npm
release with its patches, the CSP, the signed-in customer's cookie, and the real server
(`python -m bot website serve` on a demo database) signing customers in and out.
tests/e2e/test_website.py drives the widget in Chromium."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bot import clock
from bot.db import session_factory
from bot.demo_data import ensure_demo_data
from bot.identity import IdentityAttempts
from bot.known_customer import vouched_account
from bot.schema import upgrade
from bot.website import security
from bot.website.signin import COOKIE, cookie_value, customer_of
from tests.e2e.servers import VENV_BIN, free_port, start, wait_until_up

WEBSITE = Path(__file__).resolve().parents[1] / "bot" / "website"
VENDOR = WEBSITE / "static" / "vendor"
SECRET = "website-test-secret"
CONFIG = re.compile(r'<script type="application/json" id="chat-config">(.*?)</script>')


def test_the_widget_is_rasa_webchat_1_0_1_from_npm() -> None:
    package = json.loads((WEBSITE / "package.json").read_text())
    lock = json.loads((WEBSITE / "package-lock.json").read_text())
    assert package["dependencies"] == {"rasa-webchat": "1.0.1"}  # exact: no range
    installed = lock["packages"]["node_modules/rasa-webchat"]
    assert installed["version"] == "1.0.1" and installed["integrity"].startswith("sha512-")
    bundle = (VENDOR / "rasa-webchat.js").read_text(encoding="utf-8")
    assert bundle.startswith("/* rasa-webchat 1.0.1 (npm, lib/index.js)")
    assert "Apache License" in (VENDOR / "rasa-webchat.LICENSE").read_text()


def test_the_vendored_widget_is_patched() -> None:
    bundle = (VENDOR / "rasa-webchat.js").read_text(encoding="utf-8")
    assert "googleapis" not in bundle and "@import url(http" not in bundle  # no web font from Google
    assert len(re.findall(r"customData:([\w.$]+),metadata:\1,session_id:", bundle)) == 3
    assert bundle.count('transports:["websocket"]') == 2


def test_the_recorded_style_hashes_are_this_bundles() -> None:
    """A bundle changed without running scripts/vendor-webchat.sh would break the widget's
    styles under the CSP."""
    record = json.loads((VENDOR / "rasa-webchat.styles.json").read_text())
    bundle = (VENDOR / "rasa-webchat.js").read_bytes()
    assert record["bundle_sha256"] == hashlib.sha256(bundle).hexdigest()
    assert record["style_hashes"] and all(h.startswith("'sha256-") for h in record["style_hashes"])


def _directives(policy: str) -> dict[str, list[str]]:
    return {name: values for name, *values in (part.split() for part in policy.split(";"))}


def test_the_csp_allows_only_the_site_and_the_rasa_server() -> None:
    policy = _directives(security.headers("http://127.0.0.1:5005")["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'", "http://127.0.0.1:5005", "ws://127.0.0.1:5005"]
    assert policy["style-src"][0] == "'self'" and "'unsafe-inline'" not in policy["style-src"]
    assert policy["font-src"] == ["'self'", "data:"]
    assert policy["frame-ancestors"] == ["'none'"]
    secure = _directives(security.headers("https://kefu.example.cn/rasa/")["Content-Security-Policy"])
    assert secure["connect-src"] == ["'self'", "https://kefu.example.cn", "wss://kefu.example.cn"]
    with pytest.raises(ValueError):
        security.headers("127.0.0.1:5005")


def test_the_cookie_names_the_customer_only_with_the_sites_signature() -> None:
    cookie = cookie_value("3201000001", SECRET)
    assert customer_of(cookie, SECRET).account_number == "3201000001"
    number, expires, signature = cookie.split(".")
    for forged in (
        f"3201000002.{expires}.{signature}",  # another customer
        f"{number}.{int(expires) + 3600}.{signature}",  # a longer sign-in
        f"{number}.{expires}.{'0' * 64}",
        f"{number}.{expires}.签名",
        f"{number}.{expires}",
        "",
    ):
        assert customer_of(forged, SECRET) is None, forged
    assert customer_of(cookie, "another-secret") is None
    assert customer_of(cookie, "") is None
    assert customer_of(cookie_value("3201000001", SECRET, now=time.time() - 3 * 3600), SECRET) is None


@pytest.fixture(scope="module")
def database(tmp_path_factory) -> str:
    """A demo database of this module's own (the sign-in records failed checks)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('website') / 'bot.db'}"
    upgrade(url)
    ensure_demo_data(session_factory(url), clock.now())
    return url


def _serve(tmp_path_factory, database: str, secret: str) -> Iterator[str]:
    port = free_port()
    env = {
        "DATABASE_URL": database,
        "UTILITY_BACKEND": "sql",
        "CUSTOMER_TOKEN_SECRET": secret,
        "RASA_PUBLIC_URL": "https://kefu.example.cn/rasa",
        "WEBSITE_COOKIE_SECURE": "1",
    }
    args = [str(VENV_BIN / "python"), "-m", "bot", "website", "serve", "--port", str(port)]
    process = start("website-unit", args, env, tmp_path_factory.mktemp("logs"))
    try:
        wait_until_up(process, f"http://127.0.0.1:{port}/", timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory, database: str) -> Iterator[str]:
    yield from _serve(tmp_path_factory, database, SECRET)


def chat_config(page: str) -> dict:
    return json.loads(CONFIG.search(page)[1])


def sign_in(site: str, number: str, name: str, **headers) -> requests.Response:
    return requests.post(
        f"{site}/signin",
        data={"account_number": number, "holder_name": name},
        headers=headers,
        allow_redirects=False,
        timeout=10,
    )


def test_the_page_tells_the_widget_where_rasa_is_and_nobody_is_signed_in(site: str) -> None:
    response = requests.get(site, timeout=10)
    assert response.status_code == 200 and "95598" in response.text
    assert response.headers["Cache-Control"] == "no-store"
    assert "wss://kefu.example.cn" in response.headers["Content-Security-Policy"]
    assert chat_config(response.text) == {
        "socketUrl": "https://kefu.example.cn",
        "socketPath": "/rasa/socket.io/",
        "customer": None,
        "owner": "",
    }
    assert requests.get(f"{site}/static/vendor/rasa-webchat.js", timeout=10).status_code == 200


def test_a_signed_in_customer_is_vouched_for_in_the_chat(site: str, monkeypatch) -> None:
    response = sign_in(site, "3201 0000 01", "张伟")
    assert response.status_code == 303 and response.headers["Location"] == "/"
    set_cookie = response.headers["Set-Cookie"]
    assert all(flag in set_cookie for flag in ("HttpOnly", "Secure", "SameSite=Lax", "Max-Age=7200"))
    cookie = response.cookies[COOKIE]

    page = requests.get(site, headers={"Cookie": f"{COOKIE}={cookie}"}, timeout=10).text
    assert "张*（户号 3201****01）" in page and "张伟" not in page
    config = chat_config(page)
    assert config["owner"] == "3201000001"
    monkeypatch.setenv("CUSTOMER_TOKEN_SECRET", SECRET)
    assert vouched_account({"customer": config["customer"]}) == "3201000001"
    assert config["customer"]["expires"] <= time.time() + 7200  # no longer than the sign-in

    forged = cookie.replace("3201000001", "3201000002", 1)
    page = requests.get(site, headers={"Cookie": f"{COOKIE}={forged}"}, timeout=10).text
    assert chat_config(page)["customer"] is None

    signed_out = requests.post(f"{site}/signout", allow_redirects=False, timeout=10)
    assert signed_out.status_code == 303 and "Max-Age=0" in signed_out.headers["Set-Cookie"]


def test_wrong_names_are_refused_and_counted_like_the_chats_identity_check(site: str, database: str) -> None:
    for _ in range(2):
        response = sign_in(site, "3201000002", "张伟")
        assert response.status_code == 400 and "户号或户主姓名不正确" in response.text
        assert 'value="3201000002"' in response.text  # the 户号 stays in the form
        assert COOKIE not in response.cookies
    assert IdentityAttempts(database).attempts_left("3201000002", clock.now()) == 1
    assert "户号或户主姓名不正确" in sign_in(site, "3209999999", "张伟").text  # unknown: the same words
    assert "失败次数过多" in sign_in(site, "3201000002", "赵六").text
    locked = sign_in(site, "3201000002", "李娜")  # the right name, too late
    assert locked.status_code == 400 and "失败次数过多" in locked.text and COOKIE not in locked.cookies
    assert "请输入10位户号" in sign_in(site, "32010", "李娜").text


def test_a_form_posted_from_another_site_is_refused(site: str) -> None:
    response = sign_in(site, "3201000003", "王强", Origin="https://evil.example")
    assert response.status_code == 403 and COOKIE not in response.cookies


def test_without_the_secret_there_is_no_sign_in(tmp_path_factory, database: str) -> None:
    for site in _serve(tmp_path_factory, database, ""):
        assert 'id="signin-form"' not in requests.get(site, timeout=10).text
        assert sign_in(site, "3201000003", "王强").status_code == 503
