"""The configuration files of one cluster, written into its run folder: nginx.conf from
deploy/loopback/nginx.conf.in, and the Rasa servers' endpoints.yml and credentials.yml.
Secrets are not written: the files name environment variables Rasa fills in at start."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from bot.cluster.layout import Layout, split_url
from bot.config import PROJECT_ROOT
from bot.replies import catalogue

TEMPLATE = PROJECT_ROOT / "deploy" / "loopback" / "nginx.conf.in"
NGINX_FOLDERS = ("body", "proxy", "fastcgi", "uwsgi", "scgi")
# the channels of a cluster: a retried REST message counts once; socket.io reaches a
# customer whichever server holds their connection
REST_CHANNEL = "bot.channels.rest.IdempotentRestInput"
SOCKETIO_CHANNEL = "bot.channels.socketio.SocketIOInput"
# how long a message id is claimed by the server working on it, how long a retry waits
# for that answer, how long the id is remembered
REST_OPTIONS = {"claim_seconds": 10, "wait_seconds": 10, "keep_seconds": 600}


def write_all(layout: Layout) -> dict[str, Path]:
    """Write nginx.conf, endpoints.yml and credentials.yml; their paths by name."""
    for folder in ("logs", *(f"nginx/{name}" for name in NGINX_FOLDERS)):
        (layout.run_dir / folder).mkdir(parents=True, exist_ok=True)
    paths = {
        "nginx": layout.run_dir / "nginx.conf",
        "endpoints": layout.run_dir / "endpoints.yml",
        "credentials": layout.run_dir / "credentials.yml",
    }
    paths["nginx"].write_text(nginx_conf(layout), encoding="utf-8")
    paths["endpoints"].write_text(yaml.safe_dump(endpoints(layout), allow_unicode=True, sort_keys=False))
    paths["credentials"].write_text(
        yaml.dump(credentials(layout), Dumper=_QuotedVariables, allow_unicode=True, sort_keys=False)
    )
    return paths


def nginx_conf(layout: Layout) -> str:
    def servers(ports: tuple[int, ...]) -> str:
        return "\n".join(f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;" for port in ports)

    said_when_down = {"text": catalogue()["actions_down"][0], "interruption": "actions_down"}
    values = {
        # nginx started as root runs its workers as root too: the run folder is root's
        "USER": "user root;" if os.geteuid() == 0 else "",
        "RUN_DIR": str(layout.run_dir),
        "RATE": str(layout.rate_per_second),
        "BURST": str(layout.burst),
        "RASA_SERVERS": servers(layout.rasa_ports),
        "ACTION_SERVERS": servers(layout.action_ports),
        "PUBLIC_PORT": str(layout.public_port),
        "API_PORT": str(layout.api_port),
        "ACTIONS_PORT": str(layout.actions_port),
        "BUSY_JSON": _json([{"text": catalogue()["servers_busy"][0]}]),
        "ACTIONS_DOWN_JSON": _json(
            {"events": [{"event": "followup", "name": "action_listen"}], "responses": [said_when_down]}
        ),
    }
    text = TEMPLATE.read_text(encoding="utf-8")
    for name, value in values.items():
        text = text.replace(f"@@{name}@@", value)
    return text


def _json(value: object) -> str:
    """JSON inside nginx's single quotes."""
    return json.dumps(value, ensure_ascii=False).replace("\\", "\\\\").replace("'", "\\'")


def endpoints(layout: Layout) -> dict:
    tracker, redis, rabbit = split_url(layout.tracker_store_url), split_url(layout.redis_url), split_url(
        layout.rabbitmq_url
    )
    return {
        "action_endpoint": {"url": f"http://127.0.0.1:{layout.actions_port}/webhook", "enable_selective_domain": True},
        "nlg": {"type": "bot.nlg.FreshResponses"},
        "tracker_store": {
            "type": "bot.tracker_store.PatientSQLTrackerStore",  # waits out a database restart
            "dialect": "postgresql",
            "url": tracker["host"],
            "port": tracker["port"] or 5432,
            "db": tracker["path"] or "rasa",
            "username": tracker["username"] or "postgres",
            "password": "${TRACKER_STORE_PASSWORD}",
            "patience_seconds": 20,
        },
        "lock_store": {
            "type": "bot.lock_store.AtomicRedisLockStore",
            "url": redis["host"],
            "port": redis["port"] or 6379,
            "db": int(redis["path"] or 0),
            "password": "${REDIS_PASSWORD}",
            # a Redis that does not answer costs a turn a second at most, then the servers
            # lock per process (degraded mode, bot/lock_store.py) and try again 5 s later
            "socket_timeout": 1,
            "retry_seconds": 5,
        },
        "event_broker": {
            "type": "bot.event_broker.PikaEventBroker",
            "url": rabbit["host"],
            "port": rabbit["port"] or 5672,
            "username": rabbit["username"] or "guest",
            "password": "${RABBITMQ_PASSWORD}",
            "queues": [layout.events_queue],
            "exchange_name": layout.events_exchange,
        },
    }


class _QuotedVariables(yaml.SafeDumper):
    """Writes `${NAME}` quoted: Rasa then leaves it to the channel, which reads the variable
    and takes an unset one as empty (Rasa refuses to start on an unset unquoted one)."""


_QuotedVariables.add_representer(
    str,
    lambda dumper, value: dumper.represent_scalar(
        "tag:yaml.org,2002:str", value, style='"' if "${" in value else None
    ),
)


def credentials(layout: Layout) -> dict:
    project = yaml.safe_load((PROJECT_ROOT / "credentials.yml").read_text(encoding="utf-8"))
    socketio = {**(project.pop("socketio") or {}), "redis_url": "${REDIS_URL}"}
    project.pop("rest", None)
    return {REST_CHANNEL: dict(REST_OPTIONS), SOCKETIO_CHANNEL: socketio, **project}
