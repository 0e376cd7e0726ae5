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
    # the agents' console (bot/console): its port, whether its session cookie is Secure
    # ("1": only over HTTPS, or http://127.0.0.1 / localhost), how long a sign-in lasts,
    # and the first lockout after five wrong passwords (doubling, at most 15 minutes)
    console_port: int
    console_cookie_secure: bool
    console_session_hours: float
    console_lockout_seconds: int
    # the Rasa server's HTTP API, through which agents' words reach the customer
    rasa_url: str
    rasa_token: str
    rasa_timeout_seconds: float
    # live handoff: the hours agents answer online ("08:00-20:00"; empty = around the clock),
    # and when a customer nobody has picked up yet is told once that someone is coming
    handoff_hours: str
    handoff_reminder_seconds: int
    # the key channels sign a known customer's 户号 with (bot/known_customer.py); empty = off
    customer_token_secret: str
    # the public website with the chat widget (bot/website): its port, the Rasa server's
    # address as the visitor's browser reaches it (socket.io), and whether the signed-in
    # customer's cookie is Secure (as the console's)
    website_port: int
    rasa_public_url: str
    website_cookie_secure: bool
    # the project whose data/nlu and domain.yml the console's trainers write into
    # (default: this checkout; tests point it at a scratch copy)
    training_project: Path
    # where the dashboard's containment and fallback figures come from (bot/analytics):
    # "database" (the embedded default) or "events" (the analytics consumer's tables, fed
    # by Rasa's event broker); the broker, the queue the consumer reads and the exchange
    # Rasa publishes to (endpoints.yml's event_broker: queues, exchange_name)
    analytics_source: str
    rabbitmq_url: str
    rasa_events_queue: str
    rasa_events_exchange: str
    # how long the analytics consumer keeps the key of a counted event against a redelivery
    analytics_keep_keys_hours: float


def timezone_name() -> str:
    """The company's time zone (BOT_TIMEZONE), alone: bot.clock asks for it for every event
    the analytics consumer counts, and reading all the settings cost a fifth of its time."""
    return os.environ.get("BOT_TIMEZONE", "Asia/Shanghai")


def load_settings() -> Settings:
    """Read the settings afresh (tests change the environment between runs)."""
    default_db = f"sqlite:///{PROJECT_ROOT / 'var' / 'bot.db'}"
    return Settings(
        database_url=os.environ.get("DATABASE_URL", default_db),
        utility_backend=os.environ.get("UTILITY_BACKEND", "sql"),
        utility_api_url=os.environ.get("UTILITY_API_URL", "http://127.0.0.1:8081"),
        utility_timeout_seconds=float(os.environ.get("UTILITY_TIMEOUT_SECONDS", "3")),
        utility_retries=int(os.environ.get("UTILITY_RETRIES", "1")),
        timezone=timezone_name(),
        ticket_sla_urgent_minutes=int(os.environ.get("TICKET_SLA_URGENT_MINUTES", "45")),
        ticket_sla_high_minutes=int(os.environ.get("TICKET_SLA_HIGH_MINUTES", "120")),
        ticket_sla_normal_minutes=int(os.environ.get("TICKET_SLA_NORMAL_MINUTES", "1440")),
        helpdesk_url=os.environ.get("HELPDESK_URL", "").strip(),
        helpdesk_timeout_seconds=float(os.environ.get("HELPDESK_TIMEOUT_SECONDS", "5")),
        console_port=int(os.environ.get("CONSOLE_PORT", "5080")),
        console_cookie_secure=os.environ.get("CONSOLE_COOKIE_SECURE", "1").strip() == "1",
        console_session_hours=float(os.environ.get("CONSOLE_SESSION_HOURS", "12")),
        console_lockout_seconds=int(os.environ.get("CONSOLE_LOCKOUT_SECONDS", "60")),
        rasa_url=os.environ.get("RASA_URL", "http://127.0.0.1:5005").rstrip("/"),
        rasa_token=os.environ.get("RASA_TOKEN", ""),
        rasa_timeout_seconds=float(os.environ.get("RASA_TIMEOUT_SECONDS", "10")),
        handoff_hours=os.environ.get("HANDOFF_HOURS", "").strip(),
        handoff_reminder_seconds=int(os.environ.get("HANDOFF_REMINDER_SECONDS", "180")),
        customer_token_secret=os.environ.get("CUSTOMER_TOKEN_SECRET", ""),
        website_port=int(os.environ.get("WEBSITE_PORT", "5090")),
        rasa_public_url=os.environ.get("RASA_PUBLIC_URL", "http://127.0.0.1:5005").rstrip("/"),
        website_cookie_secure=os.environ.get("WEBSITE_COOKIE_SECURE", "1").strip() == "1",
        training_project=Path(os.environ.get("TRAINING_PROJECT", "").strip() or PROJECT_ROOT),
        analytics_source=os.environ.get("ANALYTICS_SOURCE", "database").strip().lower(),
        rabbitmq_url=os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"),
        rasa_events_queue=os.environ.get("RASA_EVENTS_QUEUE", "rasa_events"),
        rasa_events_exchange=os.environ.get("RASA_EVENTS_EXCHANGE", "rasa-exchange"),
        analytics_keep_keys_hours=float(os.environ.get("ANALYTICS_KEEP_KEYS_HOURS", "48")),
    )
