"""The website's response headers. The Content-Security-Policy lets the page run only its
own scripts, connect only to itself and to the Rasa server's socket.io, and apply only
its own stylesheet plus the exact styles the vendored widget injects (their hashes are
recorded when it is vendored: static/vendor/rasa-webchat.styles.json); nothing at all
comes from another host, fonts included."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

VENDOR = Path(__file__).resolve().parent / "static" / "vendor"
STYLES = VENDOR / "rasa-webchat.styles.json"


@lru_cache(maxsize=1)
def widget_style_hashes() -> tuple[str, ...]:
    return tuple(json.loads(STYLES.read_text())["style_hashes"])


def socket_origins(rasa_public_url: str) -> tuple[str, str]:
    """The Rasa server's origin for socket.io's HTTP polling and its WebSocket twin."""
    url = urlsplit(rasa_public_url)
    if url.scheme not in ("http", "https") or not url.netloc:
        raise ValueError(f"RASA_PUBLIC_URL must be an http(s) URL, not {rasa_public_url!r}")
    socket_scheme = "wss" if url.scheme == "https" else "ws"
    return f"{url.scheme}://{url.netloc}", f"{socket_scheme}://{url.netloc}"


def headers(rasa_public_url: str) -> dict[str, str]:
    http_origin, socket_origin = socket_origins(rasa_public_url)
    policy = (
        "default-src 'self'; script-src 'self'; "
        f"style-src 'self' {' '.join(widget_style_hashes())}; "
        "img-src 'self' data:; font-src 'self' data:; "
        f"connect-src 'self' {http_origin} {socket_origin}; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
