"""The WeChat channel's table: followers bound to a 户号 (the messages already taken are in
bot/dedup.py's `inbound_messages`)."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, String

from bot.db import Base


class WeChatBindingRow(Base):
    """A follower (openid: WeChat's id of a person for this official account) whose
    identity check for the 户号 succeeded in a WeChat conversation."""

    __tablename__ = "wechat_bindings"

    openid = Column(String(64), primary_key=True)
    account_number = Column(String(10), nullable=False, index=True)
    bound_at = Column(DateTime, nullable=False)
