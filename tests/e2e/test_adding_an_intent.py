"""docs/adding-an-intent.md, followed on a copy of the project: every `step` block of the
page is applied, a candidate is trained (with a smaller configuration) and evaluated by
the commands the page gives, and promoted into a running Rasa server while a customer is
in the middle of a conversation. The customer keeps the conversation; the new intent is
recognised and answered; a candidate that has forgotten it is refused."""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from rasa.shared.nlu.training_data.loading import load_data

from tests.e2e.conftest import ARTIFACTS, RASA_TOKEN, Stack, rasa_endpoints
from tests.e2e.servers import PROJECT, VENV_BIN, RestClient, free_port, start, wait_until_up
from tests.training_project import scratch_project

pytestmark = pytest.mark.e2e

DOC = PROJECT / "docs" / "adding-an-intent.md"
STEP = re.compile(
    r"<!-- step: (append (?P<file>\S+)|under (?P<key>\S+) in (?P<into>\S+)) -->\n```yaml\n(?P<body>.*?)```", re.S
)
INTENT = "ask_energy_saving"
# the same pipeline and policies with fewer epochs: minutes, not a quarter of an hour
EPOCHS = {"DIETClassifier": 40, "bot.nlu.selector.RetrievalResponseSelector": 20}


@dataclass
class Copy:
    root: Path
    env: dict[str, str]

    def bot(self, *args: str) -> subprocess.CompletedProcess:
        """`python -m bot ...` as the page says, in the copy."""
        return subprocess.run(
            [str(VENV_BIN / "python"), "-m", "bot", *args, "--project", str(self.root)],
            cwd=self.root, env=self.env, capture_output=True, text=True, timeout=1500,
        )  # fmt: skip


def apply_steps(root: Path) -> int:
    """Apply every step block of the page to the copy; returns how many there were."""
    steps = list(STEP.finditer(DOC.read_text(encoding="utf-8")))
    for step in steps:
        body = step["body"]
        if step["file"]:
            path = root / step["file"]
            path.parent.mkdir(parents=True, exist_ok=True)
            existing = path.read_text(encoding="utf-8") if path.exists() else ""
            path.write_text(existing + ("" if existing.endswith("\n") or not existing else "\n") + body)
        else:
            path = root / step["into"]
            lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
            at = lines.index(f"{step['key']}\n") + 1
            path.write_text("".join(lines[:at] + [body] + lines[at:]), encoding="utf-8")
    return len(steps)


def small_config(root: Path) -> Path:
    config = yaml.safe_load((root / "config.yml").read_text(encoding="utf-8"))
    for component in config["pipeline"]:
        if component["name"] in EPOCHS:
            component["epochs"] = EPOCHS[component["name"]]
    path = root / "config.small.yml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def project(tmp_path_factory, stack: Stack) -> Iterator[Copy]:
    root = scratch_project(tmp_path_factory.mktemp("project"), runnable=True)
    env = {
        **os.environ,
        "DATABASE_URL": stack.database_url,
        "RASA_TOKEN": RASA_TOKEN,
        "RASA_TELEMETRY_ENABLED": "false",
        "PYTHONPATH": str(PROJECT),
    }
    yield Copy(root, env)


@pytest.fixture(scope="module")
def rasa_server(project: Copy, stack: Stack) -> Iterator[str]:
    """A Rasa server of its own on the copy's current model, with the stack's action server."""
    port = free_port()
    endpoints = project.root / "endpoints.yml"
    endpoints.write_text(rasa_endpoints(stack.actions_url), encoding="utf-8")
    server = start(
        "rasa-promotion",
        [
            str(VENV_BIN / "rasa"), "run", "--port", str(port), "--interface", "127.0.0.1",
            "--model", str(project.root / "models" / "current.tar.gz"), "--endpoints", str(endpoints),
            "--credentials", str(PROJECT / "credentials.yml"), "--enable-api", "--auth-token", RASA_TOKEN,
        ],
        project.env,
        ARTIFACTS,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(server, f"{url}/", ready="Hello from Rasa")
        yield url
    finally:
        server.stop()


def status(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/status?token={RASA_TOKEN}", timeout=30) as response:
        return json.load(response)


def test_the_page_takes_a_new_intent_from_examples_to_a_promoted_model(project: Copy, rasa_server: str) -> None:
    assert apply_steps(project.root) == 6
    examples = load_data(str(project.root / "data" / "nlu" / "energy.yml")).intent_examples
    assert len(examples) >= 15 and {e.get("intent") for e in examples} == {INTENT}
    check = subprocess.run(
        [str(VENV_BIN / "rasa"), "data", "validate"], cwd=project.root, env=project.env, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-2000:]

    # a customer is in the middle of a bill lookup on the running server
    customer, sender = RestClient(rasa_server), "promotion-customer"
    assert "户号" in "\n".join(customer.send(sender, "我想查一下电费"))
    asked = "\n".join(customer.send(sender, "3201000001"))
    assert "户主姓名" in asked, asked
    before = status(rasa_server)["model_id"]

    trained = project.bot("nlu", "candidate", "--config", str(small_config(project.root)))
    assert trained.returncode in (0, 3), trained.stdout[-3000:] + trained.stderr[-3000:]
    candidate = sorted((project.root / "models" / "candidates").iterdir())[-1]
    report = (candidate / "report.md").read_text(encoding="utf-8")
    assert f"| {INTENT} |" in report and "macro-F1" in report
    assert (candidate / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    figures = json.loads((candidate / "report.json").read_text(encoding="utf-8"))
    # at least half of the held-out wordings, never trained on, with the smaller training
    assert figures["candidate"]["intents"][INTENT]["recall"] >= 0.5
    assert INTENT not in figures["current"]["intents"] or figures["current"]["intents"][INTENT]["recall"] == 0

    # the page's command; a smaller training may cost a point, which is not what is tested here
    forced = [] if trained.returncode == 0 else ["--force"]
    promoted = project.bot("nlu", "promote", "--rasa-url", rasa_server, *forced)
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    assert status(rasa_server)["model_id"] not in (before, None)
    assert (project.root / "models" / "previous.tar.gz").exists()

    # the customer answers the question asked before the swap, and nothing is asked again
    answer = "\n".join(customer.send(sender, "张伟"))
    assert "3201****01" in answer and "元" in answer, answer
    tips = "\n".join(customer.send(sender, "夏天家里怎么才能省点电"))
    domain = yaml.safe_load((project.root / "domain.yml").read_text(encoding="utf-8"))
    assert tips in [variant["text"] for variant in domain["responses"][f"utter_{INTENT}"]], tips


def test_a_candidate_that_forgot_the_new_intent_is_refused(project: Copy, rasa_server: str) -> None:
    running = status(rasa_server)["model_id"]
    assessed = project.bot("nlu", "candidate", "--model", str(PROJECT / "models" / "current.tar.gz"))
    assert assessed.returncode == 3, assessed.stdout + assessed.stderr
    assert "不予上线" in assessed.stdout
    candidate = sorted((project.root / "models" / "candidates").iterdir())[-1]
    assert "不予上线" in (candidate / "report.md").read_text(encoding="utf-8")

    refused = project.bot("nlu", "promote", str(candidate), "--rasa-url", rasa_server)
    assert refused.returncode == 3 and "不予上线" in refused.stderr
    assert status(rasa_server)["model_id"] == running
