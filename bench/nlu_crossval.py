"""NLU benchmark: k-fold cross-validation of this project's pipeline (config.yml) and of
Rasa's default `rasa init` pipeline (bench/default_config.yml) on the same training data.

    .venv/bin/python bench/nlu_crossval.py [--folds 5]

Prints intent macro-F1, entity F1 and FAQ response-selection F1 side by side, and the
training time of each run. Reports land in bench/out/crossval-*/ (not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
RASA = PROJECT / ".venv" / "bin" / "rasa"
CONFIGS = {"this project": PROJECT / "config.yml", "rasa init default": PROJECT / "bench" / "default_config.yml"}


def run(name: str, config: Path, folds: int) -> dict[str, float]:
    out = PROJECT / "bench" / "out" / f"crossval-{config.stem}"
    started = time.monotonic()
    subprocess.run(
        [str(RASA), "test", "nlu", "--nlu", "data/nlu", "--config", str(config),
         "--cross-validation", "--folds", str(folds), "--out", str(out), "--no-plot"],
        cwd=PROJECT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "RASA_TELEMETRY_ENABLED": "false"},
    )  # fmt: skip
    seconds = time.monotonic() - started
    intents = json.loads((out / "intent_report.json").read_text())
    return {
        "intent macro-F1": intents["macro avg"]["f1-score"],
        "intent accuracy": intents["accuracy"],
        "entity F1 (DIET, micro)": _entity_f1(out / "DIETClassifier_report.json"),
        "entity F1 (regex)": _entity_f1(out / "RegexEntityExtractor_report.json"),
        "FAQ response F1": _response_f1(out / "response_selection_report.json"),
        "minutes for all folds": seconds / 60,
    }


def _entity_f1(path: Path) -> float | None:
    if not path.exists():
        return None
    report = json.loads(path.read_text())
    return report.get("micro avg", report.get("weighted avg", {})).get("f1-score")


def _response_f1(path: Path) -> float | None:
    if not path.exists():
        return None
    return json.loads(path.read_text())["macro avg"]["f1-score"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    results = {name: run(name, config, args.folds) for name, config in CONFIGS.items()}
    names = list(results)
    print(f"\nNLU {args.folds}-fold cross-validation on data/nlu")
    print(f"| figure | {' | '.join(names)} |")
    print(f"| --- | {' | '.join('---' for _ in names)} |")
    for figure in results[names[0]]:
        cells = [results[n][figure] for n in names]
        print(f"| {figure} | {' | '.join('n/a' if c is None else f'{c:.3f}' for c in cells)} |")


if __name__ == "__main__":
    main()
