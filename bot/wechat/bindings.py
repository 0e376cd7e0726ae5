"""Followers bound to a 户号 (户号: the electricity account number on the bill). A follower
who passed the identity check for an account in a WeChat conversation is bound to it; the
channel then vouches for that 户号 on each of their messages (bot/known_customer.py), so
"查电费" needs neither the number nor the check again. "解绑" unbinds, and so does leaving
the official account (unsubscribe): a link between a WeChat identity and an electricity
account is personal data, kept only while the person follows the account.

One 户号 a follower; binding another replaces it. Functions take the `sessions` factory
first, like the other services.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from bot import clock
from bot.db import session_factory
from bot.masking import mask_account, mask_openid
from bot.wechat.models import WeChatBindingRow

log = logging.getLogger(__name__)


def bind(sessions: sessionmaker, openid: str, account_number: str, now: datetime) -> None:
    """Bind the follower to the 户号 (replacing an earlier one)."""
    for _ in range(2):  # two first bindings at once: the loser updates the winner's row
        try:
            with sessions.begin() as session:
                row = session.get(WeChatBindingRow, openid)
                if row is None:
                    session.add(WeChatBindingRow(openid=openid, account_number=account_number, bound_at=now))
                else:
                    row.account_number, row.bound_at = account_number, now
            return
        except IntegrityError:
            continue


def unbind(sessions: sessionmaker, openid: str) -> str | None:
    """Drop the follower's binding; the 户号 it had, or None when there was none."""
    with sessions.begin() as session:
        row = session.get(WeChatBindingRow, openid)
        if row is None:
            return None
        number = row.account_number
        session.execute(delete(WeChatBindingRow).where(WeChatBindingRow.openid == openid))
        return number


def bound_account(sessions: sessionmaker, openid: str) -> str | None:
    with sessions() as session:
        return session.scalars(select(WeChatBindingRow.account_number).where(WeChatBindingRow.openid == openid)).first()


def bind_verified_follower(openid: str, account_number: str) -> None:
    """For the account form: the follower just passed the identity check. A database that
    does not answer costs the binding (the customer is asked again next time), never the turn."""
    try:
        bind(session_factory(), openid, account_number, clock.now())
        log.info("WeChat follower %s bound to %s", mask_openid(openid), mask_account(account_number))
    except SQLAlchemyError as error:
        log.warning("could not bind a WeChat follower to %s: %s", mask_account(account_number), type(error).__name__)
