"""The console's defences in depth: response headers (a strict Content-Security-Policy:
no inline script, nothing from another host), CSRF tokens, and the signed token of the
login form, which has no session yet."""

from __future__ import annotations

import hashlib
import hmac
import secrets

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
SESSION_COOKIE = "console_session"
LOGIN_COOKIE = "console_login"  # the login form's double-submit token, signed


def same_token(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; a missing token never matches."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


class LoginTokens:
    """Double-submit tokens for the login form: the cookie holds `token.signature`, the
    form holds `token`. The signature (a key of this process) stops a cookie planted by a
    neighbouring site from passing; a restart asks the person to reload the form."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def issue(self, cookie: str | None = None) -> tuple[str, str]:
        """(form token, cookie value). A browser that holds a valid cookie keeps it: it may
        load the login page more than once (a second tab, a prefetch) before it posts."""
        token = self._token_of(cookie) or secrets.token_urlsafe(24)
        return token, f"{token}.{self._sign(token)}"

    def check(self, form_token: str | None, cookie: str | None) -> bool:
        return same_token(form_token, self._token_of(cookie))

    def _token_of(self, cookie: str | None) -> str | None:
        if not cookie or "." not in cookie:
            return None
        token, signature = cookie.rsplit(".", 1)
        return token if same_token(signature, self._sign(token)) else None

    def _sign(self, token: str) -> str:
        return hmac.new(self._key, token.encode(), hashlib.sha256).hexdigest()


def safe_next(target: str | None) -> str | None:
    """Only a path of this site to go to after login (never //host or a scheme)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target
