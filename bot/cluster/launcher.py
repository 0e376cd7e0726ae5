"""Start, watch and stop one cluster's processes: the action servers, the Rasa servers,
nginx, the analytics consumer, the recovery worker and (for a full deployment) the console
and the website.
Each process logs into the run folder's logs/. The product's migrations run first; the
product's and the tracker store's databases are made if they are missing."""

from __future__ import annotations

import http.client
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bot.cluster.files import write_all
from bot.cluster.layout import Layout, split_url
from bot.config import PROJECT_ROOT
from bot.schema import ensure_database, upgrade

log = logging.getLogger(__name__)

BIN = Path(sys.executable).parent
STARTUP_SECONDS = 600.0  # a Rasa server loads its model in about a minute, several on two busy cores


class ClusterError(RuntimeError):
    """A part did not start, or stopped."""


@dataclass
class Part:
    name: str
    args: list[str]
    env: dict[str, str]
    health: str  # a URL that answers 200 once the part serves; empty: none
    popen: subprocess.Popen | None = None

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


@dataclass
class Cluster:
    layout: Layout
    secrets: dict[str, str]  # RASA_TOKEN, CUSTOMER_TOKEN_SECRET, and the services' passwords
    staff_apps: bool = False  # also the console and the website
    parts: dict[str, Part] = field(default_factory=dict)

    @property
    def log_dir(self) -> Path:
        return self.layout.run_dir / "logs"

    def start(self) -> None:
        """Everything, in order, each waited for; on a failure what started is stopped."""
        try:
            self._prepare()
            for part in self._plan():
                self.parts[part.name] = part
                self._launch(part)
            self.wait_until_up(list(self.parts))
        except BaseException:
            self.stop()
            raise

    def _prepare(self) -> None:
        files = write_all(self.layout)
        for url in (self.layout.database_url, self.layout.tracker_store_url):
            ensure_database(url)
        upgrade(self.layout.database_url)
        self._files = files

    def _env(self) -> dict[str, str]:
        tracker, redis, rabbit = (
            split_url(self.layout.tracker_store_url),
            split_url(self.layout.redis_url),
            split_url(self.layout.rabbitmq_url),
        )
        return {
            **os.environ,
            "RASA_TELEMETRY_ENABLED": "false",
            "DATABASE_URL": self.layout.database_url,
            "REDIS_URL": self.layout.redis_url,
            "RABBITMQ_URL": self.layout.rabbitmq_url,
            "RASA_EVENTS_QUEUE": self.layout.events_queue,
            "RASA_EVENTS_EXCHANGE": self.layout.events_exchange,
            "ANALYTICS_SOURCE": "events",  # the console reads the consumer's figures
            # endpoints.yml names these; Rasa fills them in (and refuses an unset one)
            "TRACKER_STORE_PASSWORD": tracker["password"] or "",
            "REDIS_PASSWORD": redis["password"] or "",
            "RABBITMQ_PASSWORD": rabbit["password"] or "guest",
            "TICKET_LOCK_LIFETIME": str(self.layout.lock_lifetime),
            "RASA_URL": self.layout.api_url,
            "PYTHONPATH": str(PROJECT_ROOT),
            **self.layout.extra_env,
            **self.secrets,
        }

    def _plan(self) -> list[Part]:
        env, files, layout = self._env(), self._files, self.layout
        rasa = str(BIN / "rasa")
        # the action servers answer only on loopback, behind nginx's actions door; Sanic's
        # 5 s keep-alive would drop calls a busy Rasa server opened (bench/RESULTS.md)
        actions_env = {**env, "SANIC_HOST": "127.0.0.1", "SANIC_KEEP_ALIVE_TIMEOUT": "120"}
        parts = [
            Part(f"actions-{n}", [rasa, "run", "actions", "--port", str(port)], actions_env,
                 f"http://127.0.0.1:{port}/health")
            for n, port in enumerate(layout.action_ports, 1)
        ]  # fmt: skip
        parts += [
            Part(
                f"rasa-{n}",
                [
                    rasa, "run", "--interface", "127.0.0.1", "--port", str(port), "--model", str(layout.model),
                    "--endpoints", str(files["endpoints"]), "--credentials", str(files["credentials"]),
                    "--enable-api", "--auth-token", self.secrets["RASA_TOKEN"],
                ],
                env,
                f"http://127.0.0.1:{port}/",
            )
            for n, port in enumerate(layout.rasa_ports, 1)
        ]  # fmt: skip
        python = str(BIN / "python")
        parts.append(
            Part("nginx", ["nginx", "-p", str(layout.run_dir), "-c", str(files["nginx"]), "-g", "daemon off;"], env,
                 f"{layout.public_url}/health")
        )  # fmt: skip
        parts.append(Part("analytics", [python, "-m", "bot", "analytics", "consume"], env, ""))
        # conversations cut off by the actions door's apology go to a person once the
        # action servers answer there again (bot/cluster/recovery.py)
        recovery_env = {**env, "ACTIONS_URL": f"http://127.0.0.1:{layout.actions_port}"}
        parts.append(Part("recovery", [python, "-m", "bot", "recovery", "run"], recovery_env, ""))
        if self.staff_apps:
            console_port, website_port = env.get("CONSOLE_PORT", "5080"), env.get("WEBSITE_PORT", "5090")
            website_env = {**env, "RASA_PUBLIC_URL": layout.public_url}
            parts += [
                Part("console", [python, "-m", "bot", "console", "serve", "--port", console_port], env,
                     f"http://127.0.0.1:{console_port}/login"),
                Part("website", [python, "-m", "bot", "website", "serve", "--port", website_port], website_env,
                     f"http://127.0.0.1:{website_port}/"),
            ]  # fmt: skip
        return parts

    def _launch(self, part: Part) -> None:
        with (self.log_dir / f"{part.name}.log").open("ab") as out:
            part.popen = subprocess.Popen(part.args, cwd=PROJECT_ROOT, env=part.env, stdout=out, stderr=out)
        log.info("started %s (pid %d)", part.name, part.popen.pid)

    def wait_until_up(self, names: list[str], timeout: float = STARTUP_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        pending = [self.parts[name] for name in names if self.parts[name].health]
        while pending:
            for part in list(pending):
                if not part.running():
                    raise ClusterError(f"{part.name} stopped; its log: {self.log_dir / (part.name + '.log')}")
                if answers(part.health):
                    pending.remove(part)
            if pending and time.monotonic() > deadline:
                raise ClusterError(f"not up after {timeout:.0f}s: {', '.join(p.name for p in pending)}")
            if pending:
                time.sleep(0.3)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Stop one part the hard way (a crash, as far as the others can tell)."""
        part = self.parts[name]
        if part.running():
            part.popen.send_signal(sig)
            part.popen.wait(timeout=30)

    def restart(self, name: str) -> None:
        """Start a stopped part again and wait until it serves."""
        self._launch(self.parts[name])
        self.wait_until_up([name])

    def stopped(self) -> list[str]:
        """Parts that are not running (and should be)."""
        return [name for name, part in self.parts.items() if not part.running()]

    def stop(self) -> None:
        for part in reversed(list(self.parts.values())):
            if part.running():
                part.popen.send_signal(signal.SIGTERM)
        for part in self.parts.values():
            if part.popen is None:
                continue
            try:
                part.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                part.popen.kill()
                part.popen.wait()


def answers(url: str) -> bool:
    """Whether the part at `url` answers 200. Anything else is "not yet", a reply that is
    not HTTP too: polling a loopback port nobody listens on yet can connect the probe to
    itself (TCP's simultaneous open), and it then reads back its own request."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, http.client.HTTPException):
        return False
