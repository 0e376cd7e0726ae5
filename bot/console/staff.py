"""Staff accounts of the console: creating them (argon2 password hashes), roles,
deactivation, password resets, and the audit log of logins and account changes.
Signing in and sessions are in signin.py.

Sync functions in the style of the ticket service: `sessions` first, the time as a naive
local datetime, plain frozen values back, named exceptions for bad input.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.console.models import StaffAuditRow, StaffSessionRow, StaffUserRow

# 坐席 answers customers; 班长 (supervisor) also watches the figures; 训练师 improves the
# bot's understanding; 管理员 manages staff accounts.
ROLES: dict[str, str] = {"agent": "坐席", "supervisor": "班长", "trainer": "训练师", "admin": "管理员"}
MIN_PASSWORD = 10
MAX_PASSWORD = 256  # hashing megabytes of "password" is a denial of service, not a login
_USERNAME = re.compile(r"[a-z0-9][a-z0-9_.-]{1,31}")
HASHER = PasswordHasher()


class StaffError(Exception):
    """Base of the staff service's named failures."""


class InvalidUsername(StaffError):
    pass


class UsernameTaken(StaffError):
    pass


class WeakPassword(StaffError):
    pass


class InvalidRole(StaffError):
    pass


class UnknownStaff(StaffError):
    pass


@dataclass(frozen=True)
class StaffUser:
    id: int
    username: str
    display_name: str
    role: str
    active: bool
    failed_logins: int
    locked_until: datetime | None
    created_at: datetime
    last_seen_at: datetime | None

    @property
    def role_name(self) -> str:
        return ROLES.get(self.role, self.role)


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    kind: str
    username: str
    ip: str | None
    detail: dict


# -- accounts ---------------------------------------------------------------------


def normalize_username(username: str) -> str:
    return (username or "").strip().lower()


def check_password(password: str) -> None:
    """Refuse a password too short to resist guessing (or absurdly long)."""
    if len(password) < MIN_PASSWORD:
        raise WeakPassword(f"password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise WeakPassword(f"password must have at most {MAX_PASSWORD} characters")


def create_user(
    sessions: sessionmaker,
    username: str,
    display_name: str,
    role: str,
    password: str,
    now: datetime,
    *,
    actor: str = "cli",
) -> StaffUser:
    """A new active account. Usernames are 2 to 32 lowercase letters, digits, `_.-`."""
    username = normalize_username(username)
    if not _USERNAME.fullmatch(username):
        raise InvalidUsername("username must be 2 to 32 of a-z 0-9 _ . - (starting with a letter or digit)")
    if role not in ROLES:
        raise InvalidRole(f"role must be one of {', '.join(ROLES)}")
    check_password(password)
    display_name = " ".join((display_name or "").split())[:64] or username
    password_hash = HASHER.hash(password)

    def work(session: Session) -> StaffUser:
        if session.scalar(select(StaffUserRow.id).where(StaffUserRow.username == username)) is not None:
            raise UsernameTaken(f"username {username!r} exists")
        row = StaffUserRow(
            username=username,
            display_name=display_name,
            role=role,
            password_hash=password_hash,
            active=True,
            failed_logins=0,
            created_at=now,
        )
        session.add(row)
        session.flush()
        add_audit(session, now, "user_created", row, None, {"by": actor, "role": role})
        return user_view(row)

    try:
        with sessions.begin() as session:
            return work(session)
    except IntegrityError as error:  # created by someone else at the same moment
        raise UsernameTaken(f"username {username!r} exists") from error


def users(sessions: sessionmaker) -> list[StaffUser]:
    with sessions() as session:
        return [user_view(row) for row in session.scalars(select(StaffUserRow).order_by(StaffUserRow.username))]


def user_by_id(sessions: sessionmaker, staff_id: int) -> StaffUser | None:
    with sessions() as session:
        row = session.get(StaffUserRow, staff_id)
        return user_view(row) if row is not None else None


def display_names(sessions: sessionmaker) -> dict[str, str]:
    """username → display name, for showing who holds a ticket."""
    with sessions() as session:
        return dict(session.execute(select(StaffUserRow.username, StaffUserRow.display_name)).all())


def change_role(sessions: sessionmaker, staff_id: int, role: str, actor: str, now: datetime) -> StaffUser:
    if role not in ROLES:
        raise InvalidRole(f"role must be one of {', '.join(ROLES)}")
    return _change(sessions, staff_id, now, "user_role_changed", actor, role=role)


def set_active(sessions: sessionmaker, staff_id: int, active: bool, actor: str, now: datetime) -> StaffUser:
    """Deactivating signs the person out everywhere at once."""
    kind = "user_activated" if active else "user_deactivated"
    return _change(sessions, staff_id, now, kind, actor, active=active, end_sessions=not active)


def reset_password(sessions: sessionmaker, staff_id: int, password: str, actor: str, now: datetime) -> StaffUser:
    """A new password, the lockout lifted, every session of the person ended."""
    check_password(password)
    return _change(
        sessions,
        staff_id,
        now,
        "user_password_reset",
        actor,
        password_hash=HASHER.hash(password),
        failed_logins=0,
        locked_until=None,
        end_sessions=True,
    )


def _change(sessions: sessionmaker, staff_id: int, now: datetime, kind: str, actor: str, **changes) -> StaffUser:
    end_sessions = changes.pop("end_sessions", False)
    with sessions.begin() as session:
        row = session.get(StaffUserRow, staff_id)
        if row is None:
            raise UnknownStaff(f"no staff user {staff_id}")
        for name, value in changes.items():
            setattr(row, name, value)
        if end_sessions:
            session.execute(delete(StaffSessionRow).where(StaffSessionRow.staff_id == staff_id))
        detail = {"by": actor, **{k: v for k, v in changes.items() if k in ("role", "active")}}
        add_audit(session, now, kind, row, None, detail)
        return user_view(row)


# -- audit ------------------------------------------------------------------------


def audit_log(sessions: sessionmaker, limit: int = 50) -> list[AuditEntry]:
    """The newest entries first."""
    with sessions() as session:
        rows = session.scalars(select(StaffAuditRow).order_by(StaffAuditRow.id.desc()).limit(limit))
        return [AuditEntry(r.at, r.kind, r.username, r.ip, json.loads(r.detail)) for r in rows]


def mask_ip(ip: str | None) -> str | None:
    """192.168.*.* / 2001:db8:*: enough to tell offices apart, not to find a person."""
    if not ip:
        return None
    if ":" in ip:
        return ":".join(ip.split(":")[:2]) + ":*"
    parts = ip.split(".")
    return ".".join(parts[:2]) + ".*.*" if len(parts) == 4 else "*"


def record_audit(
    sessions: sessionmaker,
    now: datetime,
    kind: str,
    user: StaffUser | None,
    ip: str | None,
    detail: dict,
    *,
    username: str | None = None,
) -> None:
    """An audit entry in a transaction of its own."""
    with sessions.begin() as session:
        row = session.get(StaffUserRow, user.id) if user is not None else None
        add_audit(session, now, kind, row, ip, detail, username=username)


def add_audit(
    session: Session,
    now: datetime,
    kind: str,
    row: StaffUserRow | None,
    ip: str | None,
    detail: dict,
    *,
    username: str | None = None,
) -> None:
    """An audit entry in the caller's transaction (`username` when there is no such user)."""
    session.add(
        StaffAuditRow(
            at=now,
            kind=kind,
            staff_id=row.id if row is not None else None,
            username=row.username if row is not None else (username or "?"),
            ip=mask_ip(ip),
            detail=json.dumps(detail, ensure_ascii=False, sort_keys=True),
        )
    )


def user_view(row: StaffUserRow) -> StaffUser:
    """The plain view of a row (call inside the session)."""
    return StaffUser(
        id=row.id,
        username=row.username,
        display_name=row.display_name,
        role=row.role,
        active=bool(row.active),
        failed_logins=row.failed_logins,
        locked_until=row.locked_until,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
    )
