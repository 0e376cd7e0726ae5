"""The README's first command installs and runs the whole bot on the embedded default."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.servers import RestClient, free_port

PROJECT = Path(__file__).resolve().parents[1]


def test_readme_starts_with_exactly_the_two_commands() -> None:
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    first_block = re.search(r"```bash\n(.*?)```", readme, re.S)[1]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip()]
    assert commands == ["./scripts/run.sh", "./scripts/test.sh"]
    assert readme.index("```bash") < readme.index("\n## ")
    assert (PROJECT / ".ci" / "run").read_text().strip().endswith("exec ./scripts/test.sh")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.e2e
def test_run_command_serves_the_bot_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    rasa_port, actions_port = free_port(), free_port()
    env = {
        **os.environ,
        "RASA_PORT": str(rasa_port),
        "ACTIONS_PORT": str(actions_port),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
    }
    env.pop("UTILITY_BACKEND", None)
    process = subprocess.Popen(
        ["./scripts/run.sh"], cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in process.stdout:
            lines.append(line)
            if "The bot is ready." in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(600), "".join(lines)[-3000:]
        output = "".join(lines)
        assert "demo data loaded" in output
        assert f"http://127.0.0.1:{rasa_port}/webhooks/rest/webhook" in output and "bot chat" in output

        rest = RestClient(f"http://127.0.0.1:{rasa_port}")
        assert "户主姓名" in "\n".join(rest.send("readme", "帮我查下3201000001上个月电费"))
        answer = "\n".join(rest.send("readme", "张伟"))
        assert "320.04元" in answer and "3201****01" in answer
    finally:
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        process.wait(timeout=90)
    deadline = time.monotonic() + 30
    while (_port_open(rasa_port) or _port_open(actions_port)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _port_open(rasa_port) and not _port_open(actions_port), "servers still running after Ctrl-C"
