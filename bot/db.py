"""Database engine and sessions (SQLAlchemy 1.4 used in its 2.0 style)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine, create_engine
from sqlalchemy.orm import Session, declarative_base, sessionmaker
from sqlalchemy.pool import QueuePool

from bot.config import load_settings

Base = declarative_base()


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    """One engine per database URL for the life of the process."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # SQLAlchemy 1.4 opens a new SQLite connection for every session of a file database
        # (NullPool), with its pragmas: a tenth of the action server's CPU. Connections are
        # kept as 2.0 keeps them; each serves one session at a time, from any thread.
        engine = create_engine(
            url, future=True, poolclass=QueuePool, connect_args={"check_same_thread": False, "timeout": 15}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, future=True, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def session_factory(url: str | None = None) -> sessionmaker:
    """Sessions bound to the configured database (or to `url`)."""
    engine = engine_for(url or load_settings().database_url)
    return sessionmaker(bind=engine, future=True, expire_on_commit=False, class_=Session)
