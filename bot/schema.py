"""Schema migrations (Alembic), applied the same way on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

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
