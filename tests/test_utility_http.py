"""HttpUtilityData against real HTTP servers on loopback: the reference API on the demo
database, and small fake servers that fail in the ways company systems do."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import bot.utility
from bot import clock
from bot.utility import UtilityUnavailable, utility_data
from bot.utility.http import HttpUtilityData
from bot.utility.reference_api import make_server
from bot.utility.sql import SqlUtilityData
from tests.e2e.servers import running

ACCOUNTS = ["3201000001", "3201000002", "3201000003"]
UNKNOWN_ACCOUNT = "3201000009"


# (status, content type, body) for the n-th request (1-based)
Respond = Callable[[int], tuple[int, str, bytes]]


@contextmanager
def fake_server(respond: Respond) -> Iterator[tuple[str, list[str]]]:
    """A company API that answers as `respond` says; yields the base URL and the paths requested."""
    requested: list[str] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            with lock:
                requested.append(self.path)
                count = len(requested)
            status, content_type, body = respond(count)
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the client gave up waiting (the slow server)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    with running(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as url:
        yield url, requested


def _json(value: object, status: int = 200) -> tuple[int, str, bytes]:
    return status, "application/json; charset=utf-8", json.dumps(value, ensure_ascii=False).encode()


ACCOUNT_JSON = {
    "number": "3201000001",
    "holder_name": "张伟",
    "phone": "13800000001",
    "area": "光明路",
    "address": "光明路18号3单元502",
    "status": "normal",
}


# --- the reference API on the demo database ------------------------------------------


@pytest.fixture(scope="module")
def reference_api(database_url: str) -> Iterator[str]:
    with running(make_server(database_url, "127.0.0.1", 0)) as url:
        yield url


@pytest.fixture
def http(reference_api: str) -> HttpUtilityData:
    return HttpUtilityData(reference_api, timeout=5, retries=0)


@pytest.mark.parametrize("number", ACCOUNTS)
def test_account_data_over_http_equals_sql(http, utility, number):
    assert http.account(number) == utility.account(number) is not None
    assert http.bills(number) == utility.bills(number) != []
    assert http.bills(number, limit=3) == utility.bills(number, limit=3)
    assert len(http.bills(number, limit=3)) == 3
    assert http.readings(number) == utility.readings(number) != []
    assert http.readings(number, limit=24) == utility.readings(number, limit=24)
    assert http.payments(number) == utility.payments(number) != []
    assert http.payments(number, limit=50) == utility.payments(number, limit=50)
    assert http.reconnection_orders(number) == utility.reconnection_orders(number)


def test_reconnection_orders_over_http(http, utility):
    orders = http.reconnection_orders("3201000003")
    assert orders == utility.reconnection_orders("3201000003")
    assert [o.status for o in orders] == ["pending"]


def test_areas_and_outages_over_http_equal_sql(http, utility):
    now = clock.now()
    assert http.areas() == utility.areas() != []
    for area in ["光明路", "幸福里", "和平路", "不存在的路"]:
        assert http.outages(area, now) == utility.outages(area, now), area
    assert [o.kind for o in http.outages("光明路", now)] == ["fault"]
    assert [o.kind for o in http.outages("幸福里", now)] == ["planned"]


def test_unknown_account_over_http(http):
    assert http.account(UNKNOWN_ACCOUNT) is None
    assert http.bills(UNKNOWN_ACCOUNT) == []
    assert http.readings(UNKNOWN_ACCOUNT) == []
    assert http.payments(UNKNOWN_ACCOUNT) == []
    assert http.reconnection_orders(UNKNOWN_ACCOUNT) == []


# --- failures ------------------------------------------------------------------------


def test_nothing_listening_is_unavailable():
    with socket.socket() as bound_not_listening:
        bound_not_listening.bind(("127.0.0.1", 0))
        port = bound_not_listening.getsockname()[1]
        client = HttpUtilityData(f"http://127.0.0.1:{port}", timeout=2, retries=1)
        with pytest.raises(UtilityUnavailable):
            client.account("3201000001")


def test_server_error_is_unavailable():
    with fake_server(lambda n: _json({"error": "boom"}, status=500)) as (url, requested):
        client = HttpUtilityData(url, timeout=5, retries=1)
        with pytest.raises(UtilityUnavailable):
            client.bills("3201000001")
    assert len(requested) == 1  # 500 is not retried


def test_one_503_is_retried():
    def respond(n: int) -> tuple[int, str, bytes]:
        return _json({"error": "busy"}, status=503) if n == 1 else _json(ACCOUNT_JSON)

    with fake_server(respond) as (url, requested):
        account = HttpUtilityData(url, timeout=5, retries=1).account("3201000001")
    assert account.holder_name == "张伟" and account.area == "光明路"
    assert requested == ["/accounts/3201000001", "/accounts/3201000001"]


def test_503_beyond_the_retries_is_unavailable():
    with (
        fake_server(lambda n: _json({"error": "busy"}, status=503)) as (url, requested),
        pytest.raises(UtilityUnavailable),
    ):
        HttpUtilityData(url, timeout=5, retries=1).account("3201000001")
    assert len(requested) == 2


def test_slow_server_is_unavailable():
    released = threading.Event()

    def respond(n: int) -> tuple[int, str, bytes]:
        released.wait(2)  # longer than the client waits
        return _json(ACCOUNT_JSON)

    try:
        with fake_server(respond) as (url, _requested):
            with pytest.raises(UtilityUnavailable):
                HttpUtilityData(url, timeout=0.5, retries=1).account("3201000001")
            released.set()
    finally:
        released.set()


def test_non_json_answer_is_unavailable():
    page = "<html><body>系统维护中</body></html>".encode()
    with (
        fake_server(lambda n: (200, "text/html; charset=utf-8", page)) as (url, _requested),
        pytest.raises(UtilityUnavailable),
    ):
        HttpUtilityData(url, timeout=5, retries=0).areas()


def test_area_name_travels_percent_encoded():
    with fake_server(lambda n: _json([])) as (url, requested):
        HttpUtilityData(url, timeout=5, retries=0).outages("光明路", clock.now())
    assert requested[0].startswith("/areas/%E5%85%89%E6%98%8E%E8%B7%AF/outages?now=")


# --- which implementation runs ------------------------------------------------------------


@pytest.fixture
def fresh_factory() -> Iterator[None]:
    bot.utility._build.cache_clear()
    yield
    bot.utility._build.cache_clear()


def test_sql_backend_by_default(monkeypatch, fresh_factory, sqlite_url):
    monkeypatch.delenv("UTILITY_BACKEND", raising=False)
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    data = utility_data()
    assert isinstance(data, SqlUtilityData)
    assert data.account("3201000001").holder_name == "张伟"
    assert utility_data() is data  # one per configuration


def test_http_backend_when_configured(monkeypatch, fresh_factory, sqlite_url):
    with running(make_server(sqlite_url, "127.0.0.1", 0)) as url:
        monkeypatch.setenv("UTILITY_BACKEND", "http")
        monkeypatch.setenv("UTILITY_API_URL", url)
        data = utility_data()
        assert isinstance(data, HttpUtilityData)
        assert data.account("3201000002").holder_name == "李娜"


def test_unknown_backend_is_refused(monkeypatch, fresh_factory):
    monkeypatch.setenv("UTILITY_BACKEND", "ftp")
    with pytest.raises(ValueError, match="UTILITY_BACKEND"):
        utility_data()


@pytest.mark.parametrize(
    "body",
    [
        [{"name": "光明路"}],  # fields missing
        [{"area": "光明路", "kind": "fault", "starts_at": "yesterday", "ends_at": None, "cause": None, "status": "x"}],
        {"not": "a list"},
    ],
    ids=["missing-fields", "bad-date", "wrong-shape"],
)
def test_answer_in_an_unexpected_shape_is_unavailable(body):
    with fake_server(lambda n: _json(body)) as (url, _requested):
        client = HttpUtilityData(url, timeout=5, retries=0)
        with pytest.raises(UtilityUnavailable):
            client.areas()
        with pytest.raises(UtilityUnavailable):
            client.outages("光明路", datetime(2026, 11, 24, 10, 0))


def test_a_404_that_is_not_the_contracts_answer_is_unavailable():
    """A wrong base URL must not make every customer's 户号 'unknown'."""
    with (
        fake_server(lambda n: (404, "text/html", b"<h1>Not Found</h1>")) as (url, _requested),
        pytest.raises(UtilityUnavailable),
    ):
        HttpUtilityData(url, timeout=5, retries=0).account("3201000001")
    with fake_server(lambda n: _json({"error": "not found"}, 404)) as (url, _requested):
        assert HttpUtilityData(url, timeout=5, retries=0).account("3201000001") is None


@pytest.mark.parametrize(
    "extra, key_account", [({}, False), ({"key_account": True}, True), ({"key_account": False}, False)]
)
def test_key_account_travels_and_may_be_left_out(extra, key_account):
    with fake_server(lambda n: _json({**ACCOUNT_JSON, **extra})) as (url, _requested):
        assert HttpUtilityData(url, timeout=5, retries=0).account("3201000001").key_account is key_account


def test_key_account_that_is_not_a_boolean_is_unavailable():
    with (
        fake_server(lambda n: _json({**ACCOUNT_JSON, "key_account": "false"})) as (url, _requested),
        pytest.raises(UtilityUnavailable),
    ):
        HttpUtilityData(url, timeout=5, retries=0).account("3201000001")
