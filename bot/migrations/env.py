"""Alembic environment: the URL comes from the caller (bot.schema) or DATABASE_URL."""

from alembic import context
from sqlalchemy import engine_from_config, pool

import bot.analytics.models
import bot.console.models
import bot.dedup
import bot.handoff.models
import bot.models
import bot.tickets.models
import bot.training.models
import bot.wechat.models  # noqa: F401
from bot.config import load_settings
from bot.db import Base

config = context.config
url = config.get_main_option("sqlalchemy.url") or load_settings().database_url

connectable = engine_from_config(
    {"sqlalchemy.url": url}, prefix="sqlalchemy.", poolclass=pool.NullPool, future=True
)
with connectable.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
