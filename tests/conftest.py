"""Shared fixtures: real databases (SQLite file and PostgreSQL) loaded with the demo data, and
the events of the project's stories and rules."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import Event
from rasa.shared.core.generator import TrainingDataGenerator
from rasa.shared.importers.importer import TrainingDataImporter

from bot import clock
from bot.db import session_factory
from bot.demo_data import ensure_demo_data
from bot.schema import upgrade
from bot.utility.sql import SqlUtilityData

PROJECT = Path(__file__).resolve().parents[1]
# Rasa's code in this process logs as under `rasa run` (configure_structlog at INFO): debug lines dropped
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for the session, dropped afterwards."""
    if os.environ.get("SKIP_POSTGRES") == "1":
        pytest.skip("SKIP_POSTGRES=1: PostgreSQL tests skipped on request")
    import psycopg2

    name = f"bot_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg2.connect(POSTGRES_ADMIN_URL, connect_timeout=5)
    except psycopg2.OperationalError as error:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL} ({error}); set SKIP_POSTGRES=1 to skip")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        from bot.db import engine_for

        engine_for.cache_clear()
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request, tmp_path_factory) -> Iterator[str]:
    """A migrated database with the demo data, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'bot.db'}"
        upgrade(url)
        ensure_demo_data(session_factory(url), clock.now())
        yield url
    else:
        for url in _postgres_database():
            upgrade(url)
            ensure_demo_data(session_factory(url), clock.now())
            yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory) -> str:
    """A migrated SQLite database with the demo data (for tests that need only one backend)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'bot.db'}"
    upgrade(url)
    ensure_demo_data(session_factory(url), clock.now())
    return url


@pytest.fixture
def utility(database_url: str) -> SqlUtilityData:
    return SqlUtilityData(database_url)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request, tmp_path) -> Iterator[str]:
    """A freshly migrated database of its own for one test (no demo data), on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'empty.db'}"
        upgrade(url)
        yield url
    else:
        for url in _postgres_database():
            upgrade(url)
            yield url


@pytest.fixture(scope="session")
def story_events() -> tuple[Domain, list[list[Event]]]:
    """The domain and the events of every story and rule of the project, as training sees them."""
    importer = TrainingDataImporter.load_from_dict(
        domain_path=str(PROJECT / "domain.yml"), training_data_paths=[str(PROJECT / "data")]
    )
    domain = importer.get_domain()
    trackers = TrainingDataGenerator(importer.get_stories(), domain, augmentation_factor=0).generate()
    return domain, [list(tracker.events) for tracker in trackers]
