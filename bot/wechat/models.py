"""Tables of the WeChat channel: followers bound to a 户号, and the messages already taken
(the dedup store when Redis is not configured)."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, String, Text

from bot.db import Base


class WeChatBindingRow(Base):
    """A follower (openid: WeChat's id of a person for this official account) whose
    identity check for the 户号 succeeded in a WeChat conversation."""

    __tablename__ = "wechat_bindings"

    openid = Column(String(64), primary_key=True)
    account_number = Column(String(10), nullable=False, index=True)
    bound_at = Column(DateTime, nullable=False)


class WeChatMessageRow(Base):
    """A message WeChat delivered (by MsgId, or sender and time for events), remembered
    until it expires so that WeChat's retries are not processed again."""

    __tablename__ = "wechat_messages"

    message_key = Column(String(160), primary_key=True)
    state = Column(String(16), nullable=False)  # processing | answered | push | pushed
    replies = Column(Text)  # JSON list: the passive reply, given again to a retry
    received_at = Column(DateTime, nullable=False)
    expires_at = Column(DateTime, nullable=False, index=True)
