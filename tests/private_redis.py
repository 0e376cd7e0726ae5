"""A redis-server of the test's own on a free loopback port, to kill, pause and restart at
will (the machine's shared Redis on 6379 is never touched). Nothing is saved to disk, so a
restart comes back empty as a cache-only production Redis would; unless `durable`: then
every write goes to an append-only file first, and a restart comes back with the data."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import redis

from tests.e2e.servers import free_port

REDIS_SERVER = "/usr/bin/redis-server"


class PrivateRedis:
    def __init__(self, work_dir: Path, durable: bool = False) -> None:
        self.port = free_port()
        self.work_dir = work_dir
        self.durable = durable
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def start(self) -> PrivateRedis:
        """Start it (again, on the same port) and wait until it answers."""
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.durable else ["--appendonly", "no"]
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *persistence]
        self.process = subprocess.Popen(
            [*args, "--dir", str(self.work_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client().ping()
                return self
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} did not start") from None
                time.sleep(0.02)

    def kill(self) -> None:
        """Gone at once, with its data, as a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def pause(self) -> None:
        """Hung: connections open, nothing answers (SIGSTOP)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
