"""Tables of the console: staff accounts, their login sessions and the audit log of
logins and account changes. Customer data never lands here."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, ForeignKey, Integer, String, Text

from bot.db import Base


class StaffUserRow(Base):
    """An agent, supervisor, trainer or admin who may sign in to the console."""

    __tablename__ = "staff_users"

    id = Column(Integer, primary_key=True)
    username = Column(String(64), nullable=False, unique=True)
    display_name = Column(String(64), nullable=False)
    role = Column(String(16), nullable=False)  # agent | supervisor | trainer | admin
    password_hash = Column(String(255), nullable=False)  # argon2id
    active = Column(Boolean, nullable=False)
    failed_logins = Column(Integer, nullable=False)  # consecutive wrong passwords
    locked_until = Column(DateTime)  # no password is checked before this
    created_at = Column(DateTime, nullable=False)
    last_seen_at = Column(DateTime)


class StaffSessionRow(Base):
    """A signed-in browser. Only the SHA-256 of its cookie is kept: a stolen database
    does not sign anyone in."""

    __tablename__ = "staff_sessions"

    id = Column(Integer, primary_key=True)
    token_sha256 = Column(String(64), nullable=False, unique=True)
    csrf_token = Column(String(64), nullable=False)
    staff_id = Column(Integer, ForeignKey("staff_users.id"), nullable=False, index=True)
    created_at = Column(DateTime, nullable=False)
    expires_at = Column(DateTime, nullable=False, index=True)
    last_seen_at = Column(DateTime, nullable=False)


class StaffAuditRow(Base):
    """What happened to staff accounts: logins (ok, failed, locked), logouts, and the
    admin's changes. The IP is kept masked."""

    __tablename__ = "staff_audit"

    id = Column(Integer, primary_key=True)
    at = Column(DateTime, nullable=False, index=True)
    kind = Column(String(32), nullable=False)  # login_ok | login_failed | login_locked | logout | user_* ...
    staff_id = Column(Integer, ForeignKey("staff_users.id"), index=True)  # None: no such user
    username = Column(String(64), nullable=False)  # masked when no such user exists
    ip = Column(String(64))
    detail = Column(Text, nullable=False)  # JSON object
