"""Settings from environment variables, with defaults that run locally."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Settings:
    database_url: str
    utility_backend: str
    utility_api_url: str
    utility_timeout_seconds: float
    utility_retries: int
    timezone: str
    # ticket deadlines in minutes (bot/tickets/priority.py explains the defaults)
    ticket_sla_urgent_minutes: int
    ticket_sla_high_minutes: int
    ticket_sla_normal_minutes: int
    helpdesk_url: str  # the company's work-order system; empty = tickets are not forwarded
    helpdesk_timeout_seconds: float


def load_settings() -> Settings:
    """Read the settings afresh (tests change the environment between runs)."""
    default_db = f"sqlite:///{PROJECT_ROOT / 'var' / 'bot.db'}"
    return Settings(
        database_url=os.environ.get("DATABASE_URL", default_db),
        utility_backend=os.environ.get("UTILITY_BACKEND", "sql"),
        utility_api_url=os.environ.get("UTILITY_API_URL", "http://127.0.0.1:8081"),
        utility_timeout_seconds=float(os.environ.get("UTILITY_TIMEOUT_SECONDS", "3")),
        utility_retries=int(os.environ.get("UTILITY_RETRIES", "1")),
        timezone=os.environ.get("BOT_TIMEZONE", "Asia/Shanghai"),
        ticket_sla_urgent_minutes=int(os.environ.get("TICKET_SLA_URGENT_MINUTES", "45")),
        ticket_sla_high_minutes=int(os.environ.get("TICKET_SLA_HIGH_MINUTES", "120")),
        ticket_sla_normal_minutes=int(os.environ.get("TICKET_SLA_NORMAL_MINUTES", "1440")),
        helpdesk_url=os.environ.get("HELPDESK_URL", "").strip(),
        helpdesk_timeout_seconds=float(os.environ.get("HELPDESK_TIMEOUT_SECONDS", "5")),
    )
