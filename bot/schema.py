"""Schema migrations (Alembic), applied the same way on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bot.config import PROJECT_ROOT
from bot.db import engine_for


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(PROJECT_ROOT / "bot" / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url)
    return config


def upgrade(database_url: str) -> None:
    """Bring the database to the newest schema."""
    engine_for(database_url)  # makes the SQLite file's folder on a fresh checkout
    command.upgrade(alembic_config(database_url), "head")


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database of `url` if it is missing (also Rasa's tracker
    store's, which Rasa expects to exist)."""
    target = make_url(url)
    if not target.drivername.startswith("postgresql"):
        return
    engine = create_engine(target.set(drivername="postgresql", database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            query = text("SELECT 1 FROM pg_database WHERE datname = :name")
            if connection.execute(query, {"name": target.database}).first() is None:
                connection.execute(text(f'CREATE DATABASE "{target.database}"'))
    finally:
        engine.dispose()
