"""The console's migration (0005) goes down and up again and matches the models."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import bot.console.models  # every table of the schema, for the comparison
import bot.handoff.models
import bot.models
import bot.tickets.models  # noqa: F401
from bot.db import Base, engine_for
from bot.schema import alembic_config, upgrade

STAFF_TABLES = {"staff_users", "staff_sessions", "staff_audit"}


def test_console_migration_goes_down_and_up_again(empty_database_url):
    command.downgrade(alembic_config(empty_database_url), "0004")
    tables = set(inspect(engine_for(empty_database_url)).get_table_names())
    assert not STAFF_TABLES & tables
    assert "handoffs" in tables
    upgrade(empty_database_url)
    assert set(inspect(engine_for(empty_database_url)).get_table_names()) >= STAFF_TABLES
    with engine_for(empty_database_url).connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
