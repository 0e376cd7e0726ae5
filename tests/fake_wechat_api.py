"""WeChat's API on loopback, as the channel uses it: the access token (`/cgi-bin/token`) and
the customer-service message (`/cgi-bin/message/custom/send`), with WeChat's error codes
for the faults the channel must survive: a refused token (40001), an expired one (42001) and
a follower outside the 48-hour window (45015). Records every message it accepted."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

ERRORS = {
    40001: "invalid credential",
    42001: "access_token expired",
    45015: "response out of time limit or subscription is canceled",
}


class FakeWeChatApi:
    def __init__(self, app_id: str, app_secret: str) -> None:
        self.app_id, self.app_secret = app_id, app_secret
        self.sent: list[dict] = []  # accepted messages, in order, with "at" (time.monotonic())
        self.token_requests = 0
        self.errors: list[int] = []  # error codes answered to sends
        self.outside_window: set[str] = set()  # followers silent for 48 hours
        self._valid: set[str] = set()
        self._expired: set[str] = set()
        self._fail_next: list[int] = []
        self._numbers = itertools.count(1)
        self._arrived = threading.Condition(threading.RLock())
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                url = urlsplit(self.path)
                if url.path != "/cgi-bin/token":
                    return self._reply(404, {"errcode": 404, "errmsg": "not found"})
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                self._reply(200, api._token(query))

            def do_POST(self) -> None:  # noqa: N802
                url = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if url.path != "/cgi-bin/message/custom/send":
                    return self._reply(404, {"errcode": 404, "errmsg": "not found"})
                token = parse_qs(url.query).get("access_token", [""])[0]
                self._reply(200, api._send(token, json.loads(body or b"{}")))

            def _reply(self, status: int, payload: dict) -> None:
                data = json.dumps(payload, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    # --- what WeChat does -------------------------------------------------------------

    def _token(self, query: dict[str, str]) -> dict:
        with self._arrived:
            self.token_requests += 1
            if query.get("grant_type") != "client_credential":
                return {"errcode": 40002, "errmsg": "invalid grant_type"}
            if query.get("appid") != self.app_id:
                return {"errcode": 40013, "errmsg": "invalid appid"}
            if query.get("secret") != self.app_secret:
                return {"errcode": 40125, "errmsg": "invalid appsecret"}
            token = f"ACCESS_TOKEN_{next(self._numbers)}"
            self._valid.add(token)
            return {"access_token": token, "expires_in": 7200}

    def _send(self, token: str, body: dict) -> dict:
        with self._arrived:
            code = self._error_for(token, body)
            if code:
                self.errors.append(code)
                return {"errcode": code, "errmsg": ERRORS.get(code, "error")}
            self.sent.append({**body, "at": time.monotonic()})
            self._arrived.notify_all()
            return {"errcode": 0, "errmsg": "ok"}

    def _error_for(self, token: str, body: dict) -> int:
        if token in self._expired:
            return 42001
        if token not in self._valid:
            return 40001
        if self._fail_next:
            return self._fail_next.pop(0)
        if body.get("touser") in self.outside_window:
            return 45015
        return 0

    # --- what a test does -------------------------------------------------------------

    def expire_tokens(self) -> None:
        """Every token handed out so far has expired (42001 on its next use)."""
        with self._arrived:
            self._expired |= self._valid
            self._valid.clear()

    def revoke_tokens(self) -> None:
        """Every token handed out so far is refused (40001), as when another server fetched one."""
        with self._arrived:
            self._valid.clear()

    def fail_next(self, *codes: int) -> None:
        with self._arrived:
            self._fail_next.extend(codes)

    def texts(self, openid: str) -> list[str]:
        with self._arrived:
            return [m["text"]["content"] for m in self.sent if m.get("touser") == openid and m.get("msgtype") == "text"]

    def wait_for(self, openid: str, predicate: Callable[[str], bool], timeout: float = 60.0) -> str:
        """The first text pushed to `openid` for which `predicate` holds, waiting for it."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                found = next((t for t in self.texts(openid) if predicate(t)), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"nothing matching was pushed to {openid}: {self.texts(openid)}")
                self._arrived.wait(left)
