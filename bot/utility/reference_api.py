"""A reference server for the company API contract, answering from the embedded database.

It is what the HTTP client is tested against, and a working example for the company's
integrators of what `HttpUtilityData` expects (docs/company-api.md).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from bot.utility.codec import to_json
from bot.utility.sql import SqlUtilityData

log = logging.getLogger(__name__)

Route = Callable[[SqlUtilityData, re.Match, dict[str, list[str]]], Any]


def _limit(query: dict[str, list[str]], default: int) -> int:
    return max(1, min(int(query.get("limit", [default])[0]), 120))


def _account_or_404(data: SqlUtilityData, number: str, value: Callable[[], Any]) -> Any:
    return value() if data.account(number) else None


ROUTES: list[tuple[re.Pattern, Route]] = [
    (re.compile(r"^/accounts/(\w+)$"), lambda d, m, q: d.account(m[1])),
    (
        re.compile(r"^/accounts/(\w+)/bills$"),
        lambda d, m, q: _account_or_404(d, m[1], lambda: d.bills(m[1], _limit(q, 24))),
    ),
    (
        re.compile(r"^/accounts/(\w+)/readings$"),
        lambda d, m, q: _account_or_404(d, m[1], lambda: d.readings(m[1], _limit(q, 6))),
    ),
    (
        re.compile(r"^/accounts/(\w+)/payments$"),
        lambda d, m, q: _account_or_404(d, m[1], lambda: d.payments(m[1], _limit(q, 10))),
    ),
    (
        re.compile(r"^/accounts/(\w+)/reconnection-orders$"),
        lambda d, m, q: _account_or_404(d, m[1], lambda: d.reconnection_orders(m[1])),
    ),
    (re.compile(r"^/areas$"), lambda d, m, q: d.areas()),
    (
        re.compile(r"^/areas/([^/]+)/outages$"),
        lambda d, m, q: d.outages(m[1], datetime.fromisoformat(q["now"][0])),
    ),
]


def make_server(database_url: str, host: str = "127.0.0.1", port: int = 8081) -> ThreadingHTTPServer:
    data = SqlUtilityData(database_url)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            url = urlsplit(self.path)
            path, query = unquote(url.path), parse_qs(url.query)
            for pattern, route in ROUTES:
                match = pattern.match(path)
                if match:
                    try:
                        result = route(data, match, query)
                    except (KeyError, ValueError):
                        return self._send(400, {"error": "bad request"})
                    if result is None:
                        return self._send(404, {"error": "not found"})
                    if isinstance(result, list):
                        return self._send(200, [to_json(r) for r in result])
                    return self._send(200, to_json(result))
            self._send(404, {"error": "no such route"})

        def _send(self, status: int, body: Any) -> None:
            payload = json.dumps(body, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug("company API: " + format, *args)

    return ThreadingHTTPServer((host, port), Handler)
