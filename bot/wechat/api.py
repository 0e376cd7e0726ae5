"""The WeChat API the channel calls: the customer-service message (客服消息,
`/cgi-bin/message/custom/send`), which reaches a follower outside a passive reply for 48
hours after their last message, and the access token it needs (`/cgi-bin/token`, valid for
two hours). wechatpy's client shapes the requests; this wrapper points it at the configured
base URL, caches the token, and refreshes it once when WeChat says it is invalid or expired.
"""

from __future__ import annotations

import logging
import threading

import requests
from wechatpy.client import WeChatClient
from wechatpy.exceptions import WeChatClientException

log = logging.getLogger(__name__)

# the token was refused (another server fetched a new one, or it expired early): refresh
TOKEN_REFUSED = {40001, 40014, 42001}
OUTSIDE_WINDOW = 45015  # the follower has not written in 48 hours


class WeChatApiError(Exception):
    def __init__(self, errcode: int | None, message: str) -> None:
        super().__init__(f"{errcode}: {message}" if errcode is not None else message)
        self.errcode = errcode


class OutsideWindow(WeChatApiError):
    """WeChat refuses customer-service messages 48 hours after the follower's last message."""


class _TimedSession(requests.Session):
    """wechatpy fetches the token without a timeout; every request here has one."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def request(self, method, url, **kwargs):  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        return super().request(method, url, **kwargs)


class _Client(WeChatClient):
    """wechatpy's official-account client with another base URL (a local fake in tests)."""

    def __init__(self, base_url: str, app_id: str, app_secret: str, timeout: float) -> None:
        super().__init__(app_id, app_secret, timeout=timeout, auto_retry=False)
        self.API_BASE_URL = f"{base_url}/cgi-bin/"
        self._http = _TimedSession(timeout)

    def fetch_access_token(self):
        return self._fetch_access_token(
            url=f"{self.API_BASE_URL}token",
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
        )


class WeChatApi:
    """Thread-safe: the channel sends from a thread pool."""

    def __init__(self, base_url: str, app_id: str, app_secret: str, timeout: float = 5.0) -> None:
        self._client = _Client(base_url, app_id, app_secret, timeout)
        self._lock = threading.Lock()

    def send_text(self, openid: str, text: str) -> None:
        """Send a text to a follower; raises OutsideWindow (45015) or WeChatApiError."""
        body = {"touser": openid, "msgtype": "text", "text": {"content": text}}
        token = self._token()
        try:
            self._post("message/custom/send", token, body)
        except WeChatApiError as error:
            if error.errcode not in TOKEN_REFUSED:
                raise
            log.info("WeChat refused the access token (%s): fetching a new one", error.errcode)
            self._post("message/custom/send", self._token(refused=token), body)

    def _post(self, endpoint: str, token: str, body: dict) -> dict:
        try:
            return self._client.post(endpoint, params={"access_token": token}, data=body)
        except WeChatClientException as error:
            if error.errcode == OUTSIDE_WINDOW:
                raise OutsideWindow(error.errcode, error.errmsg) from None
            raise WeChatApiError(error.errcode, str(error.errmsg or "HTTP error")) from None
        except requests.RequestException as error:
            raise WeChatApiError(None, f"WeChat API unreachable ({type(error).__name__})") from None

    def _token(self, refused: str | None = None) -> str:
        """The cached token (fetched when missing or about to expire); with `refused`, a new
        one unless another thread has already replaced the refused one."""
        with self._lock:
            try:
                if refused is not None and self._client.session.get(self._client.access_token_key) == refused:
                    self._client.fetch_access_token()
                return self._client.access_token  # wechatpy refreshes a minute before expiry
            except WeChatClientException as error:
                raise WeChatApiError(error.errcode, f"no access token: {error.errmsg}") from None
            except requests.RequestException as error:
                raise WeChatApiError(None, f"WeChat API unreachable ({type(error).__name__})") from None
