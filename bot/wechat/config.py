"""The WeChat channel's settings: the four values from the official account's admin console
(credentials.yml, usually `"${WECHAT_TOKEN}"` and so on) and a few knobs from the environment.

Rasa substitutes `${NAME}` in credentials.yml only in unquoted values, and refuses to start
when such a variable is unset. credentials.yml therefore quotes them, and the channel reads
the variable itself: unset or empty means the setting is off, so a fresh machine without a
WeChat account still starts the bot (the channel answers 503 until WECHAT_TOKEN is set).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass
from typing import Any

DEFAULT_API_URL = "https://api.weixin.qq.com"
_VARIABLE = re.compile(r"^\$\{(\w+)\}$")


@dataclass(frozen=True)
class WeChatConfig:
    token: str  # 令牌 (Token): signs every request WeChat sends; empty = channel off
    encoding_aes_key: str  # 消息加解密密钥 (EncodingAESKey): 43 characters; empty = plaintext only
    app_id: str  # 开发者ID (AppID)
    app_secret: str  # 开发者密码 (AppSecret): with the AppID, the access token for pushing
    api_url: str  # the WeChat API's base URL (a local fake in tests)
    # WeChat waits 5 s for an answer, then retries: the bot's answer must be out before.
    # 3.5, not 4.9: under a burst the Rasa server's event loop (it runs the NLU) answers up
    # to a second late (bench/RESULTS.md)
    reply_seconds: float = 3.5
    max_body_bytes: int = 64 * 1024
    max_clock_skew_seconds: int = 300
    # how long a message id is remembered (WeChat's three retries come within 15 s)
    dedup_seconds: int = 600
    redis_url: str = ""  # the dedup store: Redis when set, the database otherwise
    # bot turns at once (bot/wechat/inbox.py says why there is a limit)
    bot_concurrency: int = 4
    api_timeout_seconds: float = 5.0

    @property
    def enabled(self) -> bool:
        return bool(self.token)

    @property
    def safe_mode(self) -> bool:
        """Encrypted messages (安全模式 or 兼容模式) can be opened and answered."""
        return bool(self.encoding_aes_key)

    @property
    def can_push(self) -> bool:
        """Words can be sent outside a passive reply (slow answers, agents' replies)."""
        return bool(self.app_id and self.app_secret)

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> WeChatConfig:
        """Settings from credentials.yml's entry (values or `${NAME}`), else WECHAT_* variables."""
        given = credentials or {}

        def setting(key: str) -> str:
            value = given.get(key)
            if value is None:
                return os.environ.get(f"WECHAT_{key.upper()}", "").strip()
            value = str(value).strip()
            variable = _VARIABLE.match(value)
            return os.environ.get(variable[1], "").strip() if variable else value

        config = cls(
            token=setting("token"),
            encoding_aes_key=setting("encoding_aes_key"),
            app_id=setting("app_id"),
            app_secret=setting("app_secret"),
            api_url=(setting("api_url") or DEFAULT_API_URL).rstrip("/"),
            reply_seconds=float(os.environ.get("WECHAT_REPLY_SECONDS", "3.5")),
            max_body_bytes=int(os.environ.get("WECHAT_MAX_BODY_BYTES", str(64 * 1024))),
            dedup_seconds=int(os.environ.get("WECHAT_DEDUP_SECONDS", "600")),
            redis_url=os.environ.get("REDIS_URL", "").strip(),
            bot_concurrency=int(os.environ.get("WECHAT_BOT_CONCURRENCY", "4")),
            api_timeout_seconds=float(os.environ.get("WECHAT_API_TIMEOUT_SECONDS", "5")),
        )
        config.check()
        return config

    def check(self) -> None:
        """A value that is set but cannot work stops the start, with what to fix."""
        if self.encoding_aes_key:
            try:
                key = base64.b64decode(self.encoding_aes_key + "=", validate=True)
            except binascii.Error:
                key = b""
            if len(self.encoding_aes_key) != 43 or len(key) != 32:
                raise ValueError("WECHAT_ENCODING_AES_KEY must be the 43 characters shown in the admin console")
            if not self.app_id:
                raise ValueError("WECHAT_APP_ID is needed with WECHAT_ENCODING_AES_KEY (encrypted messages name it)")
        if self.bot_concurrency < 1:
            raise ValueError("WECHAT_BOT_CONCURRENCY must be at least 1")
        if not 0 < self.reply_seconds < 5:
            raise ValueError("WECHAT_REPLY_SECONDS must be under WeChat's 5 seconds")
