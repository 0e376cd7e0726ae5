"""Where the production profile's parts listen and what they connect to, read from the
environment with defaults that run on one machine with the services on loopback."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from bot.config import PROJECT_ROOT

LOOPBACK = "127.0.0.1"


def _ports(first: int, count: int) -> tuple[int, ...]:
    return tuple(range(first, first + count))


@dataclass(frozen=True)
class Layout:
    """One cluster. Ports are on loopback: nginx is the only door customers use
    (`public_port`); staff tools reach the Rasa HTTP API through `api_port` (token
    needed); the Rasa servers reach the action servers through `actions_port`."""

    run_dir: Path
    model: Path
    rasa_ports: tuple[int, ...]
    action_ports: tuple[int, ...]
    public_port: int
    api_port: int
    actions_port: int
    database_url: str  # the product's database (tickets, handoffs, analytics)
    tracker_store_url: str  # Rasa's SQL tracker store: postgresql://user[:password]@host:port/db
    redis_url: str  # locks (db from the URL), socket.io fan-out, message dedup
    rabbitmq_url: str  # amqp://user:password@host:port/vhost
    events_queue: str  # the queue the analytics consumer reads
    events_exchange: str = "rasa-exchange"  # the fanout exchange the Rasa servers publish to
    rate_per_second: int = 10  # per customer (client address), with a burst of `burst`
    burst: int = 20
    lock_lifetime: int = 20  # seconds a dead server's conversation lock outlives it
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. the company API's address

    @classmethod
    def from_env(cls, environ: os._Environ | dict[str, str] = os.environ) -> Layout:
        def get(name: str, default: str) -> str:
            return (environ.get(name) or "").strip() or default

        rasa_count, action_count = int(get("RASA_INSTANCES", "2")), int(get("ACTION_INSTANCES", "2"))
        return cls(
            run_dir=Path(get("CLUSTER_DIR", str(PROJECT_ROOT / "var" / "production"))),
            model=Path(get("RASA_MODEL", str(PROJECT_ROOT / "models" / "current.tar.gz"))),
            rasa_ports=_ports(int(get("RASA_FIRST_PORT", "5105")), rasa_count),
            action_ports=_ports(int(get("ACTIONS_FIRST_PORT", "5155")), action_count),
            public_port=int(get("PUBLIC_PORT", "8080")),
            api_port=int(get("RASA_API_PORT", "5100")),
            actions_port=int(get("ACTIONS_GATEWAY_PORT", "5150")),
            database_url=get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/bot"),
            tracker_store_url=get("TRACKER_STORE_URL", "postgresql://postgres@127.0.0.1:5432/rasa"),
            redis_url=get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            rabbitmq_url=get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"),
            events_queue=get("RASA_EVENTS_QUEUE", "rasa_events"),
            events_exchange=get("RASA_EVENTS_EXCHANGE", "rasa-exchange"),
            rate_per_second=int(get("CUSTOMER_RATE_PER_SECOND", "10")),
            burst=int(get("CUSTOMER_RATE_BURST", "20")),
            lock_lifetime=int(get("TICKET_LOCK_LIFETIME", "20")),
        )

    def scaled(self, rasa: int, actions: int) -> Layout:
        """The same cluster with `rasa` Rasa servers and `actions` action servers."""
        return replace(
            self, rasa_ports=_ports(self.rasa_ports[0], rasa), action_ports=_ports(self.action_ports[0], actions)
        )

    @property
    def public_url(self) -> str:
        return f"http://{LOOPBACK}:{self.public_port}"

    @property
    def api_url(self) -> str:
        return f"http://{LOOPBACK}:{self.api_port}"

    @property
    def rasa_urls(self) -> list[str]:
        return [f"http://{LOOPBACK}:{port}" for port in self.rasa_ports]


def split_url(url: str) -> dict[str, str | int | None]:
    """host, port, user, password and path (database, vhost, Redis db) of a service URL."""
    parts = urlsplit(url)
    return {
        "host": parts.hostname or LOOPBACK,
        "port": parts.port,
        "username": parts.username,
        "password": parts.password,
        "path": parts.path.lstrip("/"),
    }
