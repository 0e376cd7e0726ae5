"""Signing in to the console: argon2 password checks, the lockout after five wrong
passwords (doubling, at most 15 minutes; unknown names lock alike and cost the same
time), and the sessions a browser's cookie holds (only the token's SHA-256 is stored)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.orm import sessionmaker

from bot.console.models import StaffSessionRow, StaffUserRow
from bot.console.staff import HASHER, MAX_PASSWORD, StaffUser, add_audit, normalize_username, record_audit, user_view
from bot.masking import mask_name

log = logging.getLogger(__name__)
FAILURES_BEFORE_LOCK = 5
MAX_LOCK_SECONDS = 15 * 60


@dataclass(frozen=True)
class SignIn:
    outcome: str  # ok | wrong | locked
    user: StaffUser | None = None
    retry_after: int = 0  # seconds, when locked


@dataclass(frozen=True)
class StaffSession:
    user: StaffUser
    csrf_token: str
    expires_at: datetime


# -- signing in -------------------------------------------------------------------


def lock_seconds(failures: int, base_seconds: int) -> int:
    """How long a name is locked after this many consecutive failures: none before the
    fifth, then the base, doubling with each further failure, at most 15 minutes."""
    if failures < FAILURES_BEFORE_LOCK:
        return 0
    return min(MAX_LOCK_SECONDS, base_seconds * 2 ** (failures - FAILURES_BEFORE_LOCK))


def sign_in(
    sessions: sessionmaker, username: str, password: str, now: datetime, *, lockout_seconds: int, ip: str | None
) -> SignIn:
    """Check a password. A locked name is refused without looking at the password; an
    unknown name costs the same hashing time and locks the same way as a known one."""
    name = normalize_username(username)
    password = password[:MAX_PASSWORD]
    with sessions() as session:
        row = session.scalars(select(StaffUserRow).where(StaffUserRow.username == name)).first()
        user, password_hash = (user_view(row), row.password_hash) if row is not None else (None, "")
    if user is None:
        return _unknown_name(sessions, name, password, now, lockout_seconds, ip)
    if user.locked_until is not None and user.locked_until > now:
        record_audit(sessions, now, "login_locked", user, ip, {})
        log.warning("console login refused, %s is locked", mask_name(name))
        return SignIn("locked", retry_after=_seconds_until(user.locked_until, now))
    if _verify(sessions, user, password_hash, password) and user.active:
        with sessions.begin() as session:
            row = session.get(StaffUserRow, user.id)
            row.failed_logins, row.locked_until, row.last_seen_at = 0, None, now
            add_audit(session, now, "login_ok", row, ip, {})
            return SignIn("ok", user_view(row))
    with sessions.begin() as session:
        # counted in the database, so that concurrent guesses all count
        session.execute(
            update(StaffUserRow)
            .where(StaffUserRow.id == user.id)
            .values(failed_logins=StaffUserRow.failed_logins + 1)
            .execution_options(synchronize_session=False)
        )
        row = session.get(StaffUserRow, user.id)
        session.refresh(row)
        seconds = lock_seconds(row.failed_logins, lockout_seconds)
        if seconds:
            row.locked_until = now + timedelta(seconds=seconds)
        detail = {"failures": row.failed_logins, "inactive": not row.active}
        add_audit(session, now, "login_failed", row, ip, detail)
    log.warning("console login failed for %s (%d in a row)", mask_name(name), detail["failures"])
    return SignIn("locked", retry_after=seconds) if seconds else SignIn("wrong")


def _verify(sessions: sessionmaker, user: StaffUser, password_hash: str, password: str) -> bool:
    try:
        HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    if HASHER.check_needs_rehash(password_hash):
        with sessions.begin() as session:
            session.get(StaffUserRow, user.id).password_hash = HASHER.hash(password)
    return True


class _UnknownNames:
    """Failures of names that have no account, kept in memory so that guessing names does
    not reveal which exist (a known name locks; an unknown one must lock alike)."""

    def __init__(self, size: int = 10_000) -> None:
        self._failures: OrderedDict[str, tuple[int, datetime | None]] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def locked_until(self, name: str) -> datetime | None:
        with self._lock:
            return self._failures.get(name, (0, None))[1]

    def fail(self, name: str, now: datetime, base_seconds: int) -> int:
        with self._lock:
            failures = self._failures.pop(name, (0, None))[0] + 1
            seconds = lock_seconds(failures, base_seconds)
            self._failures[name] = (failures, now + timedelta(seconds=seconds) if seconds else None)
            while len(self._failures) > self._size:
                self._failures.popitem(last=False)
            return seconds


_unknown_names = _UnknownNames()


def _unknown_name(
    sessions: sessionmaker, name: str, password: str, now: datetime, lockout_seconds: int, ip: str | None
) -> SignIn:
    masked = mask_name(name)[:64]
    locked = _unknown_names.locked_until(name)
    if locked is not None and locked > now:
        record_audit(sessions, now, "login_locked", None, ip, {}, username=masked)
        log.warning("console login refused, %s is locked", masked)
        return SignIn("locked", retry_after=_seconds_until(locked, now))
    with contextlib.suppress(VerificationError, InvalidHashError):
        HASHER.verify(_dummy_hash(), password)  # the time a real check takes
    seconds = _unknown_names.fail(name, now, lockout_seconds)
    record_audit(sessions, now, "login_failed", None, ip, {"unknown_user": True}, username=masked)
    log.warning("console login failed for %s (no such user)", masked)
    return SignIn("locked", retry_after=seconds) if seconds else SignIn("wrong")


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return HASHER.hash(secrets.token_urlsafe(16))


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))


# -- sessions ---------------------------------------------------------------------


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(sessions: sessionmaker, user: StaffUser, now: datetime, hours: float) -> tuple[str, StaffSession]:
    """A new session: the cookie's token (only its SHA-256 is stored) and the session."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires = now + timedelta(hours=hours)
    with sessions.begin() as session:
        session.execute(delete(StaffSessionRow).where(StaffSessionRow.expires_at <= now))
        session.add(
            StaffSessionRow(
                token_sha256=_digest(token),
                csrf_token=csrf,
                staff_id=user.id,
                created_at=now,
                expires_at=expires,
                last_seen_at=now,
            )
        )
    return token, StaffSession(user, csrf, expires)


def find_session(sessions: sessionmaker, token: str | None, now: datetime) -> StaffSession | None:
    """The live session of a cookie's token, or None (unknown, expired, person deactivated)."""
    if not token or len(token) > 128:
        return None
    with sessions() as session:
        found = session.execute(
            select(StaffSessionRow, StaffUserRow)
            .join(StaffUserRow, StaffUserRow.id == StaffSessionRow.staff_id)
            .where(StaffSessionRow.token_sha256 == _digest(token))
        ).first()
        if found is None:
            return None
        row, user_row = found
        if row.expires_at <= now or not user_row.active:
            return None
        stale = (now - row.last_seen_at).total_seconds() >= 60
        result = StaffSession(user_view(user_row), row.csrf_token, row.expires_at)
    if stale:  # written at most once a minute: reading a page should not be a write
        with sessions.begin() as session:
            session.execute(update(StaffSessionRow).where(StaffSessionRow.id == row.id).values(last_seen_at=now))
            session.execute(update(StaffUserRow).where(StaffUserRow.id == user_row.id).values(last_seen_at=now))
    return result


def close_session(sessions: sessionmaker, token: str | None, now: datetime, ip: str | None) -> None:
    """Sign out: the session is gone, the logout is in the audit log."""
    if not token:
        return
    with sessions.begin() as session:
        row = session.scalars(select(StaffSessionRow).where(StaffSessionRow.token_sha256 == _digest(token))).first()
        if row is None:
            return
        user = session.get(StaffUserRow, row.staff_id)
        session.delete(row)
        add_audit(session, now, "logout", user, ip, {})
