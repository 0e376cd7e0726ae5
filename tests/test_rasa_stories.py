"""Rasa's own conversation tests (tests/stories) against the trained model."""

from __future__ import annotations

import subprocess
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def test_conversation_stories_pass(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            str(PROJECT / ".venv" / "bin" / "rasa"), "test", "core",
            "--stories", "tests/stories", "--model", "models/current.tar.gz",
            "--out", str(tmp_path), "--fail-on-prediction-errors", "--no-plot",
        ],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert (tmp_path / "failed_test_stories.yml").read_text(encoding="utf-8").count("story:") == 0
