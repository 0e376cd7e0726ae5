"""`python -m bot cluster`: secrets are never defaults, and `files` writes what the servers
read, naming the secrets instead of holding them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import yaml

from bot.cluster.launcher import answers
from tests.e2e.servers import PROJECT


def _bot(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("RASA_TOKEN", "CUSTOMER_TOKEN_SECRET")}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], cwd=PROJECT, env={**clean, **env}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def test_up_refuses_to_start_without_its_secrets() -> None:
    done = _bot("cluster", "up", RASA_TOKEN="set-but-alone")
    assert done.returncode == 2
    assert "Set CUSTOMER_TOKEN_SECRET in the environment" in done.stderr  # only the missing one named


def test_files_are_written_where_the_environment_says(tmp_path) -> None:
    done = _bot(
        "cluster", "files", CLUSTER_DIR=str(tmp_path), RASA_INSTANCES="3", PUBLIC_PORT="18080",
        REDIS_URL="redis://:s3cret@127.0.0.1:6380/2", TRACKER_STORE_URL="postgresql://bot:pw@db.local:5433/rasa",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    nginx = (tmp_path / "nginx.conf").read_text(encoding="utf-8")
    assert "listen 127.0.0.1:18080;" in nginx
    assert sum("max_fails" in line for line in nginx.splitlines()) == 3 + 2  # 3 Rasa, 2 action servers
    endpoints = yaml.safe_load((tmp_path / "endpoints.yml").read_text(encoding="utf-8"))
    assert endpoints["tracker_store"]["url"] == "db.local" and endpoints["tracker_store"]["port"] == 5433
    assert endpoints["lock_store"]["db"] == 2 and endpoints["lock_store"]["port"] == 6380
    written = "".join(path.read_text(encoding="utf-8") for path in tmp_path.glob("*.yml")) + nginx
    assert "s3cret" not in written and ":pw@" not in written  # passwords stay in the environment
    assert "${REDIS_PASSWORD}" in written and "${TRACKER_STORE_PASSWORD}" in written


def test_a_part_that_answers_with_no_http_is_not_up_yet() -> None:
    """What the probe reads when it connects to itself on a port nobody listens on yet."""
    listener = socket.create_server(("127.0.0.1", 0))

    def echo_a_request_line() -> None:
        client, _address = listener.accept()
        with client:
            client.recv(65536)
            client.sendall(b"GET / HTTP/1.1\r\n\r\n")

    threading.Thread(target=echo_a_request_line, daemon=True).start()
    with listener:
        assert answers(f"http://127.0.0.1:{listener.getsockname()[1]}/health") is False
